# bench_service-start: a VM replica that loads a model and serves HTTP, from cold boot to its first
# answered request against a warm restore of its snapshot on another port, in the same run.
# Its working directory (VM directories, snapshot files) is made under the build directory.
if(TARGET berth_qemu AND TARGET berth_http)
  add_executable(bench_service-start ${CMAKE_CURRENT_LIST_DIR}/service-start.cc)
  target_link_libraries(bench_service-start PRIVATE berth_qemu berth_http)
  target_compile_definitions(bench_service-start PRIVATE
    BERTH_TEST_IMAGES_DIR="${CMAKE_BINARY_DIR}/test-images"
    BERTH_IMAGE_SCRIPT="${CMAKE_SOURCE_DIR}/scripts/build-test-images.sh"
    BERTH_MODEL_IMAGES_DIR="${CMAKE_BINARY_DIR}/model-images"
    BERTH_MODEL_IMAGES_SCRIPT="${CMAKE_SOURCE_DIR}/examples/build-images.py"
    BERTH_BENCH_WORK_DIR="${CMAKE_CURRENT_BINARY_DIR}")
endif()
