# What untrusted task data can touch: the child machinery on its own (resource limits, scratch
# folders, reads confined to a folder, Landlock).
zbatch_add_test(sandbox_test SOURCES sandbox_test.cc LIBS zbatch_worker nlohmann_json::nlohmann_json)
