# Workloads on networks and disks end to end: containers and a VM started by the real
# `berth serve --dev` binary join Berth networks (veth, tap, DHCP, security groups, port
# forwards) and use Berth disks. The data path lives in a network namespace the test makes.
# Needs root, runc and qemu (CI has them); skips otherwise. Holds the `berth_vm` lock.
if(TARGET berth AND TARGET berth_api_client AND TARGET berth_net)
  add_executable(workload_network_e2e_test ${CMAKE_CURRENT_LIST_DIR}/workload_network_e2e_test.cc
    ${CMAKE_SOURCE_DIR}/runtime/net/netns_test_util.cc)
  target_include_directories(workload_network_e2e_test PRIVATE ${CMAKE_SOURCE_DIR})
  target_link_libraries(workload_network_e2e_test PRIVATE berth_api_client berth_net
    GTest::gmock GTest::gtest GTest::gtest_main)
  add_dependencies(workload_network_e2e_test berth)
  target_compile_definitions(workload_network_e2e_test PRIVATE
    BERTH_BINARY="$<TARGET_FILE:berth>"
    BERTH_TEST_IMAGES_DIR="${CMAKE_BINARY_DIR}/test-images"
    BERTH_IMAGE_SCRIPT="${CMAKE_SOURCE_DIR}/scripts/build-test-images.sh")
  gtest_discover_tests(workload_network_e2e_test DISCOVERY_TIMEOUT 60
    PROPERTIES TIMEOUT 900 LABELS e2e RESOURCE_LOCK berth_vm
    WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
endif()
