zbatch_add_test(router_test SOURCES router_test.cc
                LIBS zbatch_router zbatch_client nlohmann_json::nlohmann_json)
