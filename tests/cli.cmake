# The command line alone: help, version, options, the configuration file and its example, and
# the printing of inspect replies (cli/format.cc, compiled in).
zbatch_add_test(cli_test SOURCES cli_test.cc ${PROJECT_SOURCE_DIR}/cli/format.cc
                LIBS nlohmann_json::nlohmann_json PkgConfig::TOMLPP)
target_compile_definitions(cli_test PRIVATE ZBATCH_SOURCE_DIR="${PROJECT_SOURCE_DIR}"
                           ZBATCH_VERSION="${PROJECT_VERSION}")
