# End to end: disks, networks, security groups and port forwards through the real `berth` binary
# in dev mode, as root, with every bridge and rule inside a network namespace the test makes.
if(TARGET berth AND TARGET berth_api_client AND TARGET berth_net)
  berth_test(storage_network_e2e_test
    SOURCES ${CMAKE_CURRENT_LIST_DIR}/storage_network_e2e_test.cc
            ${CMAKE_SOURCE_DIR}/runtime/net/netns_test_util.cc
    LIBS berth_api_client berth_net TIMEOUT 600)
  target_include_directories(storage_network_e2e_test PRIVATE ${CMAKE_SOURCE_DIR})
  target_compile_definitions(storage_network_e2e_test PRIVATE BERTH_BINARY="$<TARGET_FILE:berth>")
  add_dependencies(storage_network_e2e_test berth)
endif()
