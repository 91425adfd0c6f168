# End to end: training jobs in `berth serve --dev` with process tasks: a gang of four that checks
# the environment each task is given and succeeds; a task that fails, retried with its gang until
# the job fails after max_retries, its tasks' logs kept; the example trainer (examples/train/,
# PyTorch) resuming from its checkpoint after a failed task.
if(TARGET berth AND TARGET berth_api_client)
  berth_test(e2e_job_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/e2e_job_test.cc
    LIBS berth_api_client LABELS e2e TIMEOUT 300)
  target_include_directories(e2e_job_test PRIVATE ${CMAKE_SOURCE_DIR})
  target_compile_definitions(e2e_job_test PRIVATE BERTH_BINARY="$<TARGET_FILE:berth>")
  add_dependencies(e2e_job_test berth)
endif()
