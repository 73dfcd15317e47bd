zbatch_add_test(e2e_cli_test SOURCES e2e_cli_test.cc
                LIBS zbatch_client nlohmann_json::nlohmann_json)
zbatch_add_test(e2e_faults_test SOURCES e2e_faults_test.cc
                LIBS zbatch_client nlohmann_json::nlohmann_json LABELS slow)
