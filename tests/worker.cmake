zbatch_add_test(worker_test SOURCES worker_test.cc LIBS zbatch_worker)
zbatch_add_test(worker_agent_test SOURCES agent_test.cc LIBS zbatch_worker nlohmann_json::nlohmann_json)
zbatch_add_test(mcp_http_test SOURCES mcp_http_test.cc LIBS zbatch_worker nlohmann_json::nlohmann_json)
