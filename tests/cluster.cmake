# The three-host test bed (tests/cluster/): one server and three agents, each in its own network
# namespace on a bridge the test makes; host loss, partitions and fencing, rejoin, drain. Label
# `cluster` (`ctest -L cluster`); it needs root for `ip netns`, as the other end-to-end suites
# that make namespaces do.
if(TARGET berth AND TARGET berth_api_client)
  berth_test(cluster_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/cluster/cluster_test.cc
    LIBS berth_api_client TIMEOUT 300 LABELS cluster)
  target_include_directories(cluster_test PRIVATE ${CMAKE_SOURCE_DIR})
  target_compile_definitions(cluster_test PRIVATE BERTH_BINARY="$<TARGET_FILE:berth>")
  add_dependencies(cluster_test berth)
endif()
