# bench_store: puts/s and gets/s of SqliteStore against MemoryStore.
if(TARGET berth_state)
  add_executable(bench_store ${CMAKE_CURRENT_LIST_DIR}/store.cc)
  target_link_libraries(bench_store PRIVATE berth_state)
endif()
