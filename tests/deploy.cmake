# Deployment: systemd notifications and reload against a notify socket of the test's own; the
# units (systemd-analyze verify), compose.yaml (docker-compose config) and the Dockerfile
# (dockerfile-utils from npm, installed on first use); the Debian package built, inspected,
# unpacked into a fresh root and run, and checked by lintian.
add_test(NAME systemd_notify_test COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/python/systemd_notify_test.py
         $<TARGET_FILE:zbatch>)
set_tests_properties(systemd_notify_test PROPERTIES TIMEOUT 300)
add_test(NAME deploy_files_test COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/python/deploy_files_test.py
         $<TARGET_FILE:zbatch> ${PROJECT_SOURCE_DIR} ${CMAKE_BINARY_DIR}/npm-deploy)
set_tests_properties(deploy_files_test PROPERTIES TIMEOUT 300)
add_test(NAME deb_package_test COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/python/deb_package_test.py
         ${CMAKE_BINARY_DIR} ${PROJECT_SOURCE_DIR})
set_tests_properties(deb_package_test PROPERTIES TIMEOUT 300 RESOURCE_LOCK cpack)
