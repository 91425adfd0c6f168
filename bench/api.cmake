# bench_api: what the REST API serves per second (gets, lists, creates) on the real SQLite store,
# against the transport's own /healthz measured in the same run.
if(TARGET berth_api)
  add_executable(bench_api ${CMAKE_CURRENT_LIST_DIR}/api.cc)
  target_link_libraries(bench_api PRIVATE berth_api berth_api_client berth_state)
endif()
