# sluice_add_test(<name> SOURCES <files...> [LINK <libs...>] [LABELS <labels...>])
# A Catch2 (v2, Debian's) test executable whose test cases CTest discovers one by one.
find_package(Catch2 2 REQUIRED)
include(Catch)

if(NOT TARGET sluice_catch_main)
  add_library(sluice_catch_main STATIC "${CMAKE_CURRENT_LIST_DIR}/catch_main.cpp")
  target_link_libraries(sluice_catch_main PUBLIC Catch2::Catch2)
endif()

function(sluice_add_test name)
  cmake_parse_arguments(ARG "" "" "SOURCES;LINK;LABELS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE sluice_catch_main ${ARG_LINK})
  sluice_enable_warnings(${name})
  # One label per test: Catch2 v2's discovery passes PROPERTIES through a -D argument, where a
  # list would be split into bogus properties.
  set(label unit)
  if(ARG_LABELS)
    list(GET ARG_LABELS 0 label)
  endif()
  catch_discover_tests(${name} PROPERTIES LABELS ${label})
endfunction()
