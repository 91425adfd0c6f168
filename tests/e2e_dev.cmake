# End to end: the real `berth` binary in dev mode, driven through the CLI and the API, killed
# with SIGKILL and restarted.
if(TARGET berth AND TARGET berth_api_client)
  berth_test(e2e_dev_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/e2e_dev_test.cc
    LIBS berth_api_client TIMEOUT 600)
  target_include_directories(e2e_dev_test PRIVATE ${CMAKE_SOURCE_DIR})
  target_compile_definitions(e2e_dev_test PRIVATE BERTH_BINARY="$<TARGET_FILE:berth>")
  add_dependencies(e2e_dev_test berth)

  berth_test(e2e_agent_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/e2e_agent_test.cc
    LIBS berth_api_client TIMEOUT 600)
  target_include_directories(e2e_agent_test PRIVATE ${CMAKE_SOURCE_DIR})
  target_compile_definitions(e2e_agent_test PRIVATE BERTH_BINARY="$<TARGET_FILE:berth>")
  add_dependencies(e2e_agent_test berth)
endif()
