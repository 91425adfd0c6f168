# bench_sim: seconds for one fill run of a 1,200-host, 6,000-GPU cluster with 10,000 requests.
if(TARGET berth_sim)
  add_executable(bench_sim ${CMAKE_CURRENT_LIST_DIR}/sim.cc)
  target_link_libraries(bench_sim PRIVATE berth_sim)
endif()
