// Validates an OpenAPI document with @apidevtools/swagger-parser: the official OpenAPI JSON
// schema for its version, then the parser's own checks; every $ref must resolve.
// Usage: node swagger_parser_validate.cjs <node_modules> <openapi.yaml>
const path = require("path");
const SwaggerParser = require(path.join(process.argv[2], "@apidevtools", "swagger-parser"));

SwaggerParser.validate(process.argv[3])
  .then((api) => console.log(`valid: OpenAPI ${api.openapi}, ${Object.keys(api.paths).length} paths`))
  .catch((err) => {
    console.error(err.message);
    process.exit(1);
  });
