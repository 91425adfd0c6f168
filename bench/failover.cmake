# bench_failover: seconds from SIGKILL of a host (its agent and workloads) to its workloads
# running on other hosts, on the three-host bed of tests/cluster/ (needs root), with the
# server's default host TTL and failover grace; a fresh placement is the baseline.
if(TARGET berth AND TARGET berth_api_client AND TARGET berth_image AND TARGET berth_net)
  add_executable(bench_failover ${CMAKE_CURRENT_LIST_DIR}/failover.cc)
  target_link_libraries(bench_failover PRIVATE berth_api_client berth_image berth_net)
  target_include_directories(bench_failover PRIVATE ${CMAKE_SOURCE_DIR})
  target_compile_definitions(bench_failover PRIVATE BERTH_BINARY="$<TARGET_FILE:berth>"
    BERTH_TEST_IMAGES_DIR="${CMAKE_BINARY_DIR}/test-images"
    BERTH_IMAGE_SCRIPT="${CMAKE_SOURCE_DIR}/scripts/build-test-images.sh")
  add_dependencies(bench_failover berth)
endif()
