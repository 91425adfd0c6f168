# Compute drivers end to end: the real `berth serve --dev` binary runs VMs (qemu) and containers
# (runc) from its image catalog, driven through the REST API and the CLI. Needs root, qemu and
# runc (CI has them); the tests skip otherwise. They hold the `berth_vm` resource lock so only one
# tiny VM boots at a time.
if(TARGET berth AND TARGET berth_image)
  add_executable(compute_e2e_test ${CMAKE_CURRENT_LIST_DIR}/compute_e2e_test.cc)
  target_link_libraries(compute_e2e_test PRIVATE berth_api_client berth_core berth_image
    GTest::gtest GTest::gtest_main)
  add_dependencies(compute_e2e_test berth)
  target_compile_definitions(compute_e2e_test PRIVATE
    BERTH_BINARY="$<TARGET_FILE:berth>"
    BERTH_TEST_IMAGES_DIR="${CMAKE_BINARY_DIR}/test-images"
    BERTH_IMAGE_SCRIPT="${CMAKE_SOURCE_DIR}/scripts/build-test-images.sh"
    BERTH_MODEL_IMAGES_DIR="${CMAKE_BINARY_DIR}/model-images"
    BERTH_MODEL_IMAGES_SCRIPT="${CMAKE_SOURCE_DIR}/examples/build-images.py")
  gtest_discover_tests(compute_e2e_test DISCOVERY_TIMEOUT 60
    PROPERTIES TIMEOUT 900 LABELS e2e RESOURCE_LOCK berth_vm
    WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
endif()
