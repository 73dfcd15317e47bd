# The documentation against the product: docs/openapi.yaml checked by two validators from npm
# (installed on first use, into the build folder) and against every route's real answers.
add_test(NAME openapi_test COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/python/openapi_test.py
         $<TARGET_FILE:zbatch> ${CMAKE_BINARY_DIR}/npm-openapi)
set_tests_properties(openapi_test PROPERTIES TIMEOUT 300)
