# cmake -DCORE_DIR=<core> -DOUT_DIR=<dir> -P xtensa_compile_check.cmake
#
# Compiles every core/*.cpp for the ESP8266 with Debian's xtensa toolchain (no C++ standard
# library there, so any STL use fails), checks the objects need neither heap nor exception
# support, and prints their code size. A missing toolchain is a failure with the package to
# install: a check that silently skips is a check nobody runs.

if(NOT CORE_DIR OR NOT OUT_DIR)
  message(FATAL_ERROR "usage: cmake -DCORE_DIR=<dir> -DOUT_DIR=<dir> -P ${CMAKE_CURRENT_LIST_FILE}")
endif()

set(_specs /usr/lib/xtensa-lx106-elf/picolibc.specs)
find_program(XTENSA_GXX xtensa-lx106-elf-g++)
find_program(XTENSA_SIZE xtensa-lx106-elf-size)
find_program(XTENSA_NM xtensa-lx106-elf-nm)
if(NOT XTENSA_GXX)
  message(FATAL_ERROR "xtensa-lx106-elf-g++ not found: install the Debian package "
                      "gcc-xtensa-lx106 (apt-get install gcc-xtensa-lx106)")
endif()
if(NOT EXISTS "${_specs}")
  message(FATAL_ERROR "${_specs} not found: install the Debian package "
                      "picolibc-xtensa-lx106-elf (apt-get install picolibc-xtensa-lx106-elf)")
endif()
if(NOT XTENSA_SIZE OR NOT XTENSA_NM)
  message(FATAL_ERROR "xtensa-lx106-elf-size/-nm not found: install the Debian package "
                      "binutils-xtensa-lx106 (apt-get install binutils-xtensa-lx106)")
endif()

file(GLOB _sources LIST_DIRECTORIES false "${CORE_DIR}/*.cpp")
list(SORT _sources)
if(NOT _sources)
  message(FATAL_ERROR "no .cpp files in ${CORE_DIR}")
endif()

file(REMOVE_RECURSE "${OUT_DIR}")
file(MAKE_DIRECTORY "${OUT_DIR}")
set(_objects)
set(_failed)
foreach(_src IN LISTS _sources)
  get_filename_component(_name "${_src}" NAME_WE)
  set(_obj "${OUT_DIR}/${_name}.o")
  # The documented device flags plus the project's warning set (-Wconversion matters more on
  # a target where int32_t is long).
  execute_process(
    COMMAND "${XTENSA_GXX}" "--specs=${_specs}" -std=gnu++17 -Os -fno-exceptions -fno-rtti
            -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wold-style-cast -Werror
            "-I${CORE_DIR}" -c "${_src}" -o "${_obj}"
    RESULT_VARIABLE _rc
    OUTPUT_VARIABLE _out
    ERROR_VARIABLE _err)
  if(_rc EQUAL 0)
    list(APPEND _objects "${_obj}")
  else()
    list(APPEND _failed "${_name}.cpp")
    message("FAILED ${_src}\n${_out}${_err}")
  endif()
endforeach()
if(_failed)
  message(FATAL_ERROR "xtensa compile failed for: ${_failed}")
endif()

# Heap and exception machinery would have to come from the Arduino core at link time; the
# firmware promises not to need them.
execute_process(COMMAND "${XTENSA_NM}" -u ${_objects} OUTPUT_VARIABLE _undefined
                RESULT_VARIABLE _rc)
if(NOT _rc EQUAL 0)
  message(FATAL_ERROR "xtensa-lx106-elf-nm failed")
endif()
string(REGEX MATCHALL "[ \t](malloc|calloc|realloc|free|_Znw[a-zA-Z0-9_]*|_Zna[a-zA-Z0-9_]*|_Zdl[a-zA-Z0-9_]*|_Zda[a-zA-Z0-9_]*|__cxa_allocate_exception|__cxa_throw|__gxx_personality_v0|_Unwind_Resume)\n"
       _forbidden "${_undefined}")
if(_forbidden)
  string(REPLACE "\n" "" _forbidden "${_forbidden}")
  message(FATAL_ERROR "core objects reference heap or exception support:${_forbidden}")
endif()

execute_process(COMMAND "${XTENSA_SIZE}" -t ${_objects} OUTPUT_VARIABLE _size RESULT_VARIABLE _rc)
if(NOT _rc EQUAL 0)
  message(FATAL_ERROR "xtensa-lx106-elf-size failed")
endif()
string(REPLACE "${OUT_DIR}/" "" _size "${_size}")
list(LENGTH _objects _count)
message("ESP8266 (xtensa-lx106, -Os) code size of ${_count} core objects:\n${_size}")
