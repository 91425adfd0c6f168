# SqliteStore durability: a writer process is killed mid-stream and the store is reopened.
if(TARGET berth_state)
  berth_test(state_crash_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/state_crash_test.cc
    LIBS berth_state)
endif()
