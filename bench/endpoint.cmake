# bench_endpoint: requests/s and latency through a service endpoint (EndpointProxy) to two
# replicas, against the same requests sent straight to one replica in the same run.
if(TARGET berth_control AND TARGET berth_http)
  add_executable(bench_endpoint ${CMAKE_CURRENT_LIST_DIR}/endpoint.cc)
  target_link_libraries(bench_endpoint PRIVATE berth_control berth_http)
endif()
