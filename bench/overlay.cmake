# bench_overlay: round-trip time and TCP throughput between containers on one Berth network,
# beside each other on one host (the baseline) and across two hosts over the agents' VXLAN
# tunnel, on the bed of tests/cluster/ (needs root, runc and the test images).
if(TARGET berth AND TARGET berth_api_client AND TARGET berth_image AND TARGET berth_net)
  add_executable(bench_overlay ${CMAKE_CURRENT_LIST_DIR}/overlay.cc)
  target_link_libraries(bench_overlay PRIVATE berth_api_client berth_image berth_net)
  target_include_directories(bench_overlay PRIVATE ${CMAKE_SOURCE_DIR})
  target_compile_definitions(bench_overlay PRIVATE BERTH_BINARY="$<TARGET_FILE:berth>"
    BERTH_TEST_IMAGES_DIR="${CMAKE_BINARY_DIR}/test-images"
    BERTH_IMAGE_SCRIPT="${CMAKE_SOURCE_DIR}/scripts/build-test-images.sh")
  add_dependencies(bench_overlay berth)
endif()
