# The real `berth` binary's command line: every command, `serve`, `agent` and `sim` included,
# refuses unknown, misplaced and malformed flags with exit code 2, renders --help, and takes
# --json.
if(TARGET berth AND TARGET berth_api_client)
  berth_test(e2e_cli_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/e2e_cli_test.cc
    LIBS berth_api_client TIMEOUT 300)
  target_include_directories(e2e_cli_test PRIVATE ${CMAKE_SOURCE_DIR})
  target_compile_definitions(e2e_cli_test PRIVATE BERTH_BINARY="$<TARGET_FILE:berth>")
  add_dependencies(e2e_cli_test berth)
endif()
