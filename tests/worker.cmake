zbatch_add_test(worker_test SOURCES worker_test.cc LIBS zbatch_worker)
