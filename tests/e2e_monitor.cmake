# The real binary's monitoring and explanations: `workload explain` with figures, `host ls`
# with allocated/capacity, per-host /metrics series, and the read-only token.
if(TARGET berth AND TARGET berth_api_client)
  berth_test(e2e_monitor_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/e2e_monitor_test.cc
    LIBS berth_api_client TIMEOUT 300)
  target_include_directories(e2e_monitor_test PRIVATE ${CMAKE_SOURCE_DIR})
  target_compile_definitions(e2e_monitor_test PRIVATE BERTH_BINARY="$<TARGET_FILE:berth>")
  add_dependencies(e2e_monitor_test berth)
endif()
