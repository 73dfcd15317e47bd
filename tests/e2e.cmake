zbatch_add_test(e2e_cli_test SOURCES e2e_cli_test.cc
                LIBS zbatch_client nlohmann_json::nlohmann_json)
zbatch_add_test(e2e_faults_test SOURCES e2e_faults_test.cc
                LIBS zbatch_client nlohmann_json::nlohmann_json LABELS slow)
zbatch_add_test(e2e_semantics_test SOURCES e2e_semantics_test.cc
                LIBS zbatch_client zbatch_eager nlohmann_json::nlohmann_json)
target_compile_definitions(e2e_semantics_test PRIVATE ZBATCH_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
zbatch_add_test(e2e_long_test SOURCES e2e_long_test.cc
                LIBS zbatch_client nlohmann_json::nlohmann_json LABELS slow)
zbatch_add_test(e2e_signals_test SOURCES e2e_signals_test.cc
                LIBS zbatch_client nlohmann_json::nlohmann_json)
zbatch_add_test(e2e_outcomes_test SOURCES e2e_outcomes_test.cc
                LIBS zbatch_client nlohmann_json::nlohmann_json)
zbatch_add_test(e2e_eager_test SOURCES e2e_eager_test.cc
                LIBS zbatch_client zbatch_eager nlohmann_json::nlohmann_json)
zbatch_add_test(e2e_curve_test SOURCES e2e_curve_test.cc
                LIBS zbatch_client nlohmann_json::nlohmann_json)
zbatch_add_test(e2e_steal_test SOURCES e2e_steal_test.cc
                LIBS zbatch_client nlohmann_json::nlohmann_json)
zbatch_add_test(e2e_resources_test SOURCES e2e_resources_test.cc
                LIBS zbatch_client nlohmann_json::nlohmann_json)
zbatch_add_test(e2e_durable_test SOURCES e2e_durable_test.cc
                LIBS zbatch_client nlohmann_json::nlohmann_json)
