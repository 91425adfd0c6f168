# bench_fleet: what one `berth serve` sustains with thousands of simulated agents (registrations,
# heartbeats, creates, end-to-end placements, list and poll latency, memory, idle CPU, restart),
# against the placement engine alone on the same hosts and workloads, in the same run.
if(TARGET berth AND TARGET berth_api_client AND TARGET berth_sched AND TARGET berth_host)
  add_executable(bench_fleet ${CMAKE_CURRENT_LIST_DIR}/fleet.cc)
  target_link_libraries(bench_fleet PRIVATE berth_api_client berth_sched berth_host)
  target_compile_definitions(bench_fleet PRIVATE BERTH_BINARY="$<TARGET_FILE:berth>")
  add_dependencies(bench_fleet berth)
endif()
