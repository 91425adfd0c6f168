# End to end: services in `berth serve --dev` with process replicas (a python3 HTTP server), health
# checked by the server, one replica killed and replaced; the endpoint losing no request while a
# replica is killed, draining a replica scaled away, and across a rolling update; an autoscaled
# service scaling to zero and back on the next request, and a 503 when no replica gets ready.
if(TARGET berth AND TARGET berth_api_client)
  berth_test(e2e_service_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/e2e_service_test.cc
    LIBS berth_api_client LABELS e2e TIMEOUT 300)
  target_include_directories(e2e_service_test PRIVATE ${CMAKE_SOURCE_DIR})
  target_compile_definitions(e2e_service_test PRIVATE BERTH_BINARY="$<TARGET_FILE:berth>")
  add_dependencies(e2e_service_test berth)
endif()
