# GPUs end to end: the real `berth serve --dev` binary with an agent config declaring GPUs;
# process workloads see exactly their device ids, and a container (runc, root) exactly its fake
# device node through CDI.
if(TARGET berth AND TARGET berth_api_client)
  berth_test(e2e_gpu_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/e2e_gpu_test.cc
    LIBS berth_api_client berth_host TIMEOUT 600)
  target_include_directories(e2e_gpu_test PRIVATE ${CMAKE_SOURCE_DIR})
  target_compile_definitions(e2e_gpu_test PRIVATE BERTH_BINARY="$<TARGET_FILE:berth>"
    BERTH_TEST_IMAGES_DIR="${CMAKE_BINARY_DIR}/test-images"
    BERTH_IMAGE_SCRIPT="${CMAKE_SOURCE_DIR}/scripts/build-test-images.sh")
  add_dependencies(e2e_gpu_test berth)
endif()
