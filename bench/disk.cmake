# bench_disk: the storage driver's cost over the bare qemu-img commands it wraps (journaling,
# fsyncs, checks), for volume create, snapshot and compressed backup.
if(TARGET berth_storage)
  add_executable(bench_disk ${CMAKE_CURRENT_LIST_DIR}/disk.cc)
  target_link_libraries(bench_disk PRIVATE berth_storage)
endif()
