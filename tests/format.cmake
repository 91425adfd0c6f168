# Every C++ source follows .clang-format.
add_test(NAME format_check COMMAND ${CMAKE_SOURCE_DIR}/scripts/check-format.sh)

# clang's thread-safety analysis over every production source, as errors.
add_test(NAME thread_safety_check
  COMMAND ${CMAKE_SOURCE_DIR}/scripts/check-thread-safety.sh ${CMAKE_BINARY_DIR})
set_tests_properties(thread_safety_check PROPERTIES TIMEOUT 1200)
