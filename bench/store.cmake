# bench_store: puts/s and gets/s of SqliteStore against MemoryStore (and of EtcdStore, --etcd).
if(TARGET berth_state)
  add_executable(bench_store ${CMAKE_CURRENT_LIST_DIR}/store.cc)
  target_link_libraries(bench_store PRIVATE berth_state)
  if(TARGET berth_state_etcd)
    target_link_libraries(bench_store PRIVATE berth_state_etcd)
    target_compile_definitions(bench_store PRIVATE BERTH_BENCH_ETCD)
  endif()
endif()
