# bench_control: scheduling passes of the control plane on SQLite at 1,000 and 10,000 hosts
# (placed/s against the placement engine in the same run), the cluster model's memory per host
# and per workload, and what heartbeats, liveness checks, assignments and registrations cost.
if(TARGET berth_control)
  add_executable(bench_control ${CMAKE_CURRENT_LIST_DIR}/control.cc)
  target_link_libraries(bench_control PRIVATE berth_control berth_state)
endif()
