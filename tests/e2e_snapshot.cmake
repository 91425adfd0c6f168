# Control-plane disaster recovery with the real binary: snapshot save and restore (SQLite and a
# real etcd on loopback), agents reconciling after a restore, migrate from SQLite to etcd, and
# scheduled snapshots.
if(TARGET berth AND TARGET berth_api_client AND TARGET berth_state_etcd_testing)
  berth_test(e2e_snapshot_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/e2e_snapshot_test.cc
    LIBS berth_api_client berth_state_etcd_testing TIMEOUT 600)
  target_include_directories(e2e_snapshot_test PRIVATE ${CMAKE_SOURCE_DIR})
  target_compile_definitions(e2e_snapshot_test PRIVATE BERTH_BINARY="$<TARGET_FILE:berth>")
  add_dependencies(e2e_snapshot_test berth)
endif()
