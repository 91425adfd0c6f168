# EtcdStore durability: the writer, or the etcd member, is killed mid-stream (needs etcd-server).
if(TARGET berth_state_etcd_testing)
  berth_test(etcd_crash_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/etcd_crash_test.cc
    LIBS berth_state_etcd_testing)
endif()
