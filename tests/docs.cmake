# The documentation against the product: docs/openapi.yaml checked by two validators from npm
# and against every route's real answers; every example of README.md and docs/**/*.md run as
# written. Both install their npm packages on first use, into the build folder.
add_test(NAME openapi_test COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/python/openapi_test.py
         $<TARGET_FILE:zbatch> ${CMAKE_BINARY_DIR}/npm-openapi)
set_tests_properties(openapi_test PROPERTIES TIMEOUT 300)
add_test(NAME doc_examples_test COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/python/doc_examples_test.py
         $<TARGET_FILE:zbatch> ${CMAKE_BINARY_DIR}/npm-docs)
set_tests_properties(doc_examples_test PROPERTIES TIMEOUT 300)
