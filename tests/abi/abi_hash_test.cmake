# abi_hash_test: fails when sdk/include/sluice/abi.h changes without an ABI version change.
#
#   cmake -P tests/abi/abi_hash_test.cmake               check (what CTest runs)
#   cmake -DUPDATE=ON -P tests/abi/abi_hash_test.cmake   record the current version and hash
#
# tests/abi/abi_hash.txt holds "<major>.<minor> <sha256 of abi.h without comments and whitespace>", the ABI version
# (SLUICE_SDK_VERSION_MAJOR/MINOR in sdk/include/sluice/version.h) that the recorded abi.h
# belongs to. Any edit of abi.h changes the hash; the test then insists that the version moves
# too, so a plugin built against the new header is never taken for one built against the old.
# See docs/abi-policy.md for which edit needs which bump.
cmake_minimum_required(VERSION 3.20)

get_filename_component(_repo "${CMAKE_CURRENT_LIST_DIR}/../.." ABSOLUTE)
if(NOT ABI_H)
  set(ABI_H "${_repo}/sdk/include/sluice/abi.h")
endif()
if(NOT VERSION_H)
  set(VERSION_H "${_repo}/sdk/include/sluice/version.h")
endif()
if(NOT RECORD)
  set(RECORD "${CMAKE_CURRENT_LIST_DIR}/abi_hash.txt")
endif()

foreach(f IN ITEMS "${ABI_H}" "${VERSION_H}")
  if(NOT EXISTS "${f}")
    message(FATAL_ERROR "abi_hash_test: ${f} does not exist")
  endif()
endforeach()

file(STRINGS "${VERSION_H}" _lines REGEX "#define SLUICE_SDK_VERSION_(MAJOR|MINOR) ")
foreach(_line IN LISTS _lines)
  if(_line MATCHES "#define SLUICE_SDK_VERSION_([A-Z]+) ([0-9]+)")
    set(_v_${CMAKE_MATCH_1} ${CMAKE_MATCH_2})
  endif()
endforeach()
if(NOT DEFINED _v_MAJOR OR NOT DEFINED _v_MINOR)
  message(FATAL_ERROR "abi_hash_test: no SLUICE_SDK_VERSION_MAJOR/MINOR in ${VERSION_H}")
endif()
set(version "${_v_MAJOR}.${_v_MINOR}")
# The hash covers declarations only: comments and whitespace are removed first, so improving
# the header's documentation needs no version change, while any change to what compiles does.
file(READ "${ABI_H}" _abi)
string(REGEX REPLACE "/\\*([^*]|\\*+[^*/])*\\*+/" "" _abi "${_abi}")
string(REGEX REPLACE "//[^\n]*" "" _abi "${_abi}")
string(REGEX REPLACE "[ \t\r\n]+" " " _abi "${_abi}")
string(SHA256 hash "${_abi}")

if(UPDATE)
  file(WRITE "${RECORD}" "${version} ${hash}\n")
  message(STATUS "abi_hash_test: recorded ABI ${version} ${hash} in ${RECORD}")
  return()
endif()

set(_how "Then record it: cmake -DUPDATE=ON -P tests/abi/abi_hash_test.cmake (from the \
repository root) and commit tests/abi/abi_hash.txt with the change.")
if(NOT EXISTS "${RECORD}")
  message(FATAL_ERROR "abi_hash_test: ${RECORD} is missing. ${_how}")
endif()
file(READ "${RECORD}" _record)
string(STRIP "${_record}" _record)
if(NOT _record MATCHES "^([0-9]+\\.[0-9]+) ([0-9a-f]+)$")
  message(FATAL_ERROR "abi_hash_test: ${RECORD} should hold \"<major>.<minor> <sha256>\", "
                      "it holds \"${_record}\". ${_how}")
endif()
set(rec_version "${CMAKE_MATCH_1}")
set(rec_hash "${CMAKE_MATCH_2}")

if(NOT hash STREQUAL rec_hash AND version STREQUAL rec_version)
  message(FATAL_ERROR
    "abi_hash_test: sdk/include/sluice/abi.h changed but the ABI version is still ${version}.\n"
    "Plugins built against the old and the new header would claim the same ABI. Bump the "
    "version in sdk/include/sluice/version.h (docs/abi-policy.md):\n"
    "  - SLUICE_SDK_VERSION_MINOR for an addition at the end of a struct, a new enum value, "
    "flag or optional callback;\n"
    "  - SLUICE_SDK_VERSION_MAJOR (and MINOR to 0) for anything removed, reordered, retyped or "
    "whose meaning changed.\n"
    "A change of comments only is not an ABI change: record the new hash, keep the version.\n"
    "${_how}\n"
    "(recorded ${rec_version} ${rec_hash}, now ${version} ${hash})")
endif()
if(NOT hash STREQUAL rec_hash OR NOT version STREQUAL rec_version)
  message(FATAL_ERROR
    "abi_hash_test: ${RECORD} is out of date: it records ABI ${rec_version} ${rec_hash}, "
    "abi.h and version.h are now ABI ${version} ${hash}. ${_how}")
endif()
message(STATUS "abi_hash_test: abi.h matches ABI ${version}")
