# bench_placement: placements per second of the sched/ placement engine per policy, on
# 1,000 / 10,000 / 100,000 simulated hosts, against a plain first-fit scan in the same run.
if(TARGET berth_sched)
  add_executable(bench_placement ${CMAKE_CURRENT_LIST_DIR}/placement.cc)
  target_link_libraries(bench_placement PRIVATE berth_sched)
endif()
