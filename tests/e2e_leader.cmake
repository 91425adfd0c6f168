# Three `berth serve` processes on a three-member etcd cluster the test starts on loopback: the
# leader's SIGKILL during a stream of creates, and clients moving on along their server lists.
if(TARGET berth AND TARGET berth_api_client AND TARGET berth_state_etcd_testing)
  berth_test(e2e_leader_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/e2e_leader_test.cc
    LIBS berth_api_client berth_state_etcd_testing TIMEOUT 600 LABELS e2e)
  target_include_directories(e2e_leader_test PRIVATE ${CMAKE_SOURCE_DIR})
  target_compile_definitions(e2e_leader_test PRIVATE BERTH_BINARY="$<TARGET_FILE:berth>")
  add_dependencies(e2e_leader_test berth)
endif()
