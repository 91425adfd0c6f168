# bench_start: create -> running through the qemu and oci drivers against launching the same VM
# and container by hand with qemu and runc, in the same run. With the `berth` binary in the build
# it also measures create -> running through the API of a `berth serve --dev`.
if(TARGET berth_qemu AND TARGET berth_oci)
  add_executable(bench_start ${CMAKE_CURRENT_LIST_DIR}/start.cc)
  target_link_libraries(bench_start PRIVATE berth_qemu berth_oci)
  target_compile_definitions(bench_start PRIVATE
    BERTH_TEST_IMAGES_DIR="${CMAKE_BINARY_DIR}/test-images"
    BERTH_IMAGE_SCRIPT="${CMAKE_SOURCE_DIR}/scripts/build-test-images.sh")
  if(TARGET berth AND TARGET berth_api_client)
    target_link_libraries(bench_start PRIVATE berth_api_client)
    add_dependencies(bench_start berth)
    target_compile_definitions(bench_start PRIVATE BERTH_BINARY="$<TARGET_FILE:berth>")
  endif()
endif()
