# bench_snapshot: seconds to save and restore a snapshot of an SqliteStore holding N workloads,
# against a plain copy of the same file (and, with --etcd, migrate and snapshot on etcd).
if(TARGET berth_state)
  add_executable(bench_snapshot ${CMAKE_CURRENT_LIST_DIR}/snapshot.cc)
  target_link_libraries(bench_snapshot PRIVATE berth_state)
  if(TARGET berth_state_etcd)
    target_link_libraries(bench_snapshot PRIVATE berth_state_etcd)
    target_compile_definitions(bench_snapshot PRIVATE BERTH_BENCH_ETCD)
  endif()
endif()
