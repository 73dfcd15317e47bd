# The HTTP server's decisions that need no socket (framing, loopback, lockouts, the route table).
zbatch_add_test(store_http_test SOURCES store_http_test.cc LIBS zbatch_store)
# The store's per-second history in its LMDB: counts, percentiles, replays, reopen, pruning.
zbatch_add_test(store_series_test SOURCES store_series_test.cc LIBS zbatch_store)
# Webhook URLs, signatures, the allow-list and hooks kept across a reopen.
zbatch_add_test(store_webhooks_test SOURCES store_webhooks_test.cc LIBS zbatch_store)
# HTTP tests in Python (Debian's python3 with python3-requests), against real processes.
foreach(t seed_examples_test http_hostile_test store_faults_test events_sse_test revoke_retry_test python_client_test
          semantics_http_test auth_test signals_test strict_input_test netns_test hostile_text_test
          worker_resize_test fault_campaign_test schedules_test trace_unique_test multihost_test webhook_test
          workflows_test)
  add_test(NAME ${t} COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/python/${t}.py $<TARGET_FILE:zbatch>)
  set_tests_properties(${t} PROPERTIES TIMEOUT 300)
endforeach()
set_tests_properties(store_faults_test fault_campaign_test multihost_test PROPERTIES LABELS slow)
# The event stream never skips in silence (durable stream log, explicit gaps), and the store's
# memory stays under its documented ceiling under hostile readers and load.
foreach(t events_gap_test store_memory_test)
  add_test(NAME ${t} COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/python/${t}.py $<TARGET_FILE:zbatch>)
  set_tests_properties(${t} PROPERTIES TIMEOUT 300)
endforeach()
set_tests_properties(store_memory_test PROPERTIES LABELS slow)
# The seed's four kinds of work; installs the MCP reference servers with npm on first use.
add_test(NAME kinds_test COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/python/kinds_test.py
         $<TARGET_FILE:zbatch> ${CMAKE_BINARY_DIR}/npm-mcp)
set_tests_properties(kinds_test PROPERTIES TIMEOUT 400 RESOURCE_LOCK npm-mcp)
# The agent kind's coding loop against scripted models of the stand-in Ollama server.
add_test(NAME kinds_agent_test COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/python/kinds_agent_test.py
         $<TARGET_FILE:zbatch>)
set_tests_properties(kinds_agent_test PROPERTIES TIMEOUT 300)
# Model pools: places per server counted by the router, cool-downs, fair turns between batches.
add_test(NAME pools_test COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/python/pools_test.py
         $<TARGET_FILE:zbatch>)
set_tests_properties(pools_test PROPERTIES TIMEOUT 300)
# MCP over Streamable HTTP: the reference server in its HTTP mode, and hostile_mcp.py.
add_test(NAME mcp_http_kinds_test COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/python/mcp_http_kinds_test.py
         $<TARGET_FILE:zbatch> ${CMAKE_BINARY_DIR}/npm-mcp)
set_tests_properties(mcp_http_kinds_test PROPERTIES TIMEOUT 300 RESOURCE_LOCK npm-mcp)
# The dashboard in Debian's chromium, driven by playwright-core (installed with npm on first use).
add_test(NAME dashboard_browser_test
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/browser/run.sh $<TARGET_FILE:zbatch> ${CMAKE_BINARY_DIR}/npm-browser)
set_tests_properties(dashboard_browser_test PROPERTIES TIMEOUT 300)
# HTTP that holds under abuse, and authentication that cannot be sidestepped: every route with
# every role, the loopback decision and failed logins, HTTPS (openssl, curl), the server's
# limits, and 200 slowloris + 10,000 idle connections beside legitimate requests.
foreach(t role_matrix_test auth_hardening_test tls_test http_limits_test http_abuse_test)
  add_test(NAME ${t} COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/python/${t}.py $<TARGET_FILE:zbatch>)
  set_tests_properties(${t} PROPERTIES TIMEOUT 300)
endforeach()
# The dashboard with a read-only token in chromium: views work, actions are refused and say so.
# After the dashboard's own browser test, which installs playwright-core on first use.
add_test(NAME dashboard_read_only_test
         COMMAND env ZBATCH_BROWSER_TEST=read_only_test.mjs bash ${CMAKE_CURRENT_SOURCE_DIR}/browser/run.sh
                 $<TARGET_FILE:zbatch> ${CMAKE_BINARY_DIR}/npm-browser)
set_tests_properties(dashboard_read_only_test PROPERTIES TIMEOUT 300 DEPENDS dashboard_browser_test)
# The store as the router's projection: group status equal to the router's record, and read
# your writes by sequence number, with real processes (and a relay that counts what the store
# asks the router).
zbatch_add_test(store_test SOURCES store_test.cc
                LIBS zbatch_store zbatch_client zbatch_common PkgConfig::HTTPLIB nlohmann_json::nlohmann_json)
# What operators watch with: the group export, /metrics through promtool (Debian's prometheus),
# the Grafana dashboard's queries against the live families, 256 concurrent event streams.
add_test(NAME observe_test COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/python/observe_test.py $<TARGET_FILE:zbatch>)
set_tests_properties(observe_test PROPERTIES TIMEOUT 300)
