# bench_fleet at a tiny size: it reports every workload placed and running in one JSON line, and
# leaves nothing behind (its server and temporary directory), whether it ends or is interrupted.
if(TARGET bench_fleet)
  berth_test(bench_fleet_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/bench_fleet_test.cc
    LIBS nlohmann_json::nlohmann_json TIMEOUT 600 LABELS e2e)
  target_compile_definitions(bench_fleet_test PRIVATE
    BERTH_BENCH_FLEET="$<TARGET_FILE:bench_fleet>")
  add_dependencies(bench_fleet_test bench_fleet)
endif()
