# bench_api: what the REST API serves per second (gets, lists, creates) on the real SQLite store
# (and on etcd with --etcd=URL), against the transport's own /healthz measured in the same run.
if(TARGET berth_api)
  add_executable(bench_api ${CMAKE_CURRENT_LIST_DIR}/api.cc)
  target_link_libraries(bench_api PRIVATE berth_api berth_api_client berth_state)
  if(TARGET berth_state_etcd)
    target_link_libraries(bench_api PRIVATE berth_state_etcd)
    target_compile_definitions(bench_api PRIVATE BERTH_BENCH_ETCD)
  endif()
endif()
