# `cmake --install` and the Debian package (`make deb`, CPack's DEB generator): the binary in
# bin/, the HTTP module where the binary looks for it (../lib/zbatch/, common/http_module.h),
# the systemd units, the example configuration as /etc/zbatch/zbatch.toml (a conffile) and
# the documentation. docs/DEPLOYMENT.md says what a host needs and how the units are used.
include(GNUInstallDirs)
# `cmake --install` and cpack install what is built, without building every test first
# (`make deb` builds the two targets it packages).
set(CMAKE_SKIP_INSTALL_ALL_DEPENDENCY ON)

install(TARGETS zbatch RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS zbatch_http LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}/zbatch)
# Debian 12's systemd reads units from /usr/lib/systemd/system (merged /usr).
set(ZBATCH_SYSTEMD_UNIT_DIR lib/systemd/system CACHE STRING "Where systemd units are installed, under the prefix")
install(FILES deploy/systemd/zbatch-router.service deploy/systemd/zbatch-store.service
              deploy/systemd/zbatch-worker@.service deploy/systemd/zbatch-up.service
        DESTINATION ${ZBATCH_SYSTEMD_UNIT_DIR})
# /etc whatever the prefix: the units name /etc/zbatch/zbatch.toml, and it is the package's conffile.
set(ZBATCH_CONFIG_DIR /etc/zbatch CACHE PATH "Where the configuration file is installed")
install(FILES zbatch.example.toml DESTINATION ${ZBATCH_CONFIG_DIR} RENAME zbatch.toml)
install(FILES zbatch.example.toml README.md docs/DEPLOYMENT.md docs/ARCHITECTURE.md docs/SECURITY.md
        DESTINATION ${CMAKE_INSTALL_DOCDIR})

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME zbatch)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "durable batch tasks over ZeroMQ and LMDB")
# CPack puts the summary first; this is the extended description under it.
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
    "A router with LMDB-durable priority queues, workers with heartbeats and\na status store serving an HTTP API and a dashboard, in one binary with\nsystemd units for each.")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(ZBATCH_DEB_MAINTAINER "zbatch maintainers <zbatch@example.org>" CACHE STRING "The Debian package's Maintainer field")
set(CPACK_DEBIAN_PACKAGE_MAINTAINER ${ZBATCH_DEB_MAINTAINER})
# Depends is computed from the libraries the binary and the module link (dpkg-shlibdeps).
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# libsystemd is loaded at run time, only under systemd (cli/service_notify.cc): named here.
set(CPACK_DEBIAN_PACKAGE_DEPENDS "libsystemd0")
set(CPACK_STRIP_FILES ON)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${PROJECT_SOURCE_DIR}/deploy/debian/conffiles
                                       ${PROJECT_SOURCE_DIR}/deploy/debian/postinst
                                       ${PROJECT_SOURCE_DIR}/deploy/debian/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
