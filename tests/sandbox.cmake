# What untrusted task data can touch: the child machinery on its own (resource limits, scratch
# folders, reads confined to a folder, Landlock), and the same through a running cluster.
zbatch_add_test(sandbox_test SOURCES sandbox_test.cc LIBS zbatch_worker nlohmann_json::nlohmann_json)
add_test(NAME sandbox_cluster_test
         COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/python/sandbox_test.py $<TARGET_FILE:zbatch>)
set_tests_properties(sandbox_cluster_test PROPERTIES TIMEOUT 300)
