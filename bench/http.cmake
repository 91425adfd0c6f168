# bench_http: requests/s of a trivial handler over keep-alive connections, against a raw
# loopback TCP echo of the same bytes measured in the same run.
if(TARGET berth_http)
  add_executable(bench_http ${CMAKE_CURRENT_LIST_DIR}/http.cc)
  target_link_libraries(bench_http PRIVATE berth_http)
endif()
