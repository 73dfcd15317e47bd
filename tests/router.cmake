zbatch_add_test(router_test SOURCES router_test.cc
                LIBS zbatch_router zbatch_client nlohmann_json::nlohmann_json)
# A full disk on a small tmpfs (needs root; skipped otherwise): 507 storage_full, nothing
# acknowledged lost, no exit, accepted again once space returns.
add_test(NAME disk_full_test COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/python/disk_full_test.py
         $<TARGET_FILE:zbatch>)
set_tests_properties(disk_full_test PROPERTIES TIMEOUT 300)
# The router's core without sockets: every transition of the life cycle, effects of messages.
zbatch_add_test(core_test SOURCES core_test.cc LIBS zbatch_router)
# The durable commit record: group commit off the loop, restore after an OS restart.
zbatch_add_test(durability_test SOURCES durability_test.cc LIBS zbatch_router)
zbatch_add_test(schedule_core_test SOURCES schedule_core_test.cc LIBS zbatch_router)
