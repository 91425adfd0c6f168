# bench_leader-failover: seconds from SIGKILL of the leading `berth serve` to the next placement,
# on a three-member etcd cluster, against etcd's own leader election measured in the same run.
if(TARGET berth AND TARGET berth_api_client AND TARGET berth_state_etcd_testing)
  add_executable(bench_leader-failover ${CMAKE_CURRENT_LIST_DIR}/leader-failover.cc)
  target_link_libraries(bench_leader-failover PRIVATE berth_api_client berth_state_etcd_testing)
  target_include_directories(bench_leader-failover PRIVATE ${CMAKE_SOURCE_DIR})
  target_compile_definitions(bench_leader-failover PRIVATE BERTH_BINARY="$<TARGET_FILE:berth>")
  add_dependencies(bench_leader-failover berth)
endif()
