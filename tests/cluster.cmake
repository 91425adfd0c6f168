# The three-host test bed (tests/cluster/): one server and three agents, each in its own network
# namespace on a bridge the test makes; host loss, partitions and fencing, rejoin, drain. Label
# `cluster` (`ctest -L cluster`); it needs root for `ip netns`, as the other end-to-end suites
# that make namespaces do.
if(TARGET berth AND TARGET berth_api_client AND TARGET berth_image AND TARGET berth_net)
  berth_test(cluster_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/cluster/cluster_test.cc
    LIBS berth_api_client berth_image berth_net TIMEOUT 300 LABELS cluster)
  target_include_directories(cluster_test PRIVATE ${CMAKE_SOURCE_DIR})
  target_compile_definitions(cluster_test PRIVATE BERTH_BINARY="$<TARGET_FILE:berth>")
  add_dependencies(cluster_test berth)
endif()

# A Berth network across hosts: containers on two agents reach each other over the VXLAN
# tunnels their agents make, security groups hold across hosts. Needs root, runc and the test
# images (skips otherwise).
if(TARGET berth AND TARGET berth_api_client AND TARGET berth_image AND TARGET berth_net)
  berth_test(cluster_network_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/cluster/cluster_network_test.cc
    LIBS berth_api_client berth_image berth_net TIMEOUT 600 LABELS cluster)
  target_include_directories(cluster_network_test PRIVATE ${CMAKE_SOURCE_DIR})
  target_compile_definitions(cluster_network_test PRIVATE BERTH_BINARY="$<TARGET_FILE:berth>"
    BERTH_TEST_IMAGES_DIR="${CMAKE_BINARY_DIR}/test-images"
    BERTH_IMAGE_SCRIPT="${CMAKE_SOURCE_DIR}/scripts/build-test-images.sh")
  add_dependencies(cluster_network_test berth)
endif()

# Disks on a fleet: a disk in one host's pool pins its container there; a VM on the shared pool
# runs on another host, with its data, when its host dies. Needs root, runc and the test images
# (skips otherwise).
if(TARGET berth AND TARGET berth_api_client AND TARGET berth_image AND TARGET berth_net)
  berth_test(cluster_storage_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/cluster/cluster_storage_test.cc
    LIBS berth_api_client berth_image berth_net TIMEOUT 600 LABELS cluster)
  target_include_directories(cluster_storage_test PRIVATE ${CMAKE_SOURCE_DIR})
  target_compile_definitions(cluster_storage_test PRIVATE BERTH_BINARY="$<TARGET_FILE:berth>"
    BERTH_TEST_IMAGES_DIR="${CMAKE_BINARY_DIR}/test-images"
    BERTH_IMAGE_SCRIPT="${CMAKE_SOURCE_DIR}/scripts/build-test-images.sh")
  add_dependencies(cluster_storage_test berth)
endif()

# Services on a fleet: replicas probed and forwarded to at their hosts' addresses, a warm state
# copied to the host a VM replica resumes on. Needs root and the test images (skips otherwise).
if(TARGET berth AND TARGET berth_api_client AND TARGET berth_image AND TARGET berth_net)
  berth_test(cluster_service_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/cluster/cluster_service_test.cc
    LIBS berth_api_client berth_image berth_net berth_http TIMEOUT 600 LABELS cluster)
  target_include_directories(cluster_service_test PRIVATE ${CMAKE_SOURCE_DIR})
  target_compile_definitions(cluster_service_test PRIVATE BERTH_BINARY="$<TARGET_FILE:berth>"
    BERTH_TEST_IMAGES_DIR="${CMAKE_BINARY_DIR}/test-images"
    BERTH_IMAGE_SCRIPT="${CMAKE_SOURCE_DIR}/scripts/build-test-images.sh")
  add_dependencies(cluster_service_test berth)
endif()
