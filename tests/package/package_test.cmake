# One step of the package test (see CMakeLists.txt):
#   cmake -DSTEP=<step> -DSOURCE_DIR=... -DBUILD_DIR=... -DWORK=... -DLIBDIR=... -DSHIPPED=a,b
#         -DGENERATOR=... -DMAKE_PROGRAM=... -DCXX=... -P package_test.cmake
# Every failure ends in FATAL_ERROR naming what is missing or wrong, with the output.
cmake_minimum_required(VERSION 3.20)

set(STAGE "${WORK}/stage")            # DESTDIR
set(PREFIX "${STAGE}/opt/sluice")     # the install as a third party would have it
set(SLUICE "${PREFIX}/bin/sluice")
set(EXAMPLES_BUILD "${WORK}/examples-build")
set(SCAFFOLDS "${WORK}/scaffolds")
string(REPLACE "," ";" SHIPPED "${SHIPPED}")
# The out-of-tree projects get the project's warning set as errors: what we ship to authors
# must compile cleanly under it.
set(WARNINGS "-Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wold-style-cast -Werror")
# Only what the test passes decides where plugins come from.
unset(ENV{SLUICE_PLUGIN_PATH})

# run(<what> COMMAND <cmd...> [WORKING_DIRECTORY d] [EXPECT rc] [OUT var] [ERR var])
# Runs a command; when its exit code is not EXPECT (default 0) fails with its output.
function(run what)
  cmake_parse_arguments(ARG "" "WORKING_DIRECTORY;EXPECT;OUT;ERR" "COMMAND" ${ARGN})
  if(NOT DEFINED ARG_EXPECT)
    set(ARG_EXPECT 0)
  endif()
  if(NOT ARG_WORKING_DIRECTORY)
    set(ARG_WORKING_DIRECTORY "${WORK}")
  endif()
  execute_process(COMMAND ${ARG_COMMAND} WORKING_DIRECTORY "${ARG_WORKING_DIRECTORY}"
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc STREQUAL ARG_EXPECT)
    string(REPLACE ";" " " cmd "${ARG_COMMAND}")
    message(FATAL_ERROR "${what} failed: exit ${rc} (expected ${ARG_EXPECT})\n"
                        "command: ${cmd}\n--- stdout\n${out}\n--- stderr\n${err}")
  endif()
  if(ARG_OUT)
    set(${ARG_OUT} "${out}" PARENT_SCOPE)
  endif()
  if(ARG_ERR)
    set(${ARG_ERR} "${err}" PARENT_SCOPE)
  endif()
endfunction()

function(require_file path why)
  if(NOT EXISTS "${path}")
    message(FATAL_ERROR "missing ${path}: ${why}")
  endif()
endfunction()

function(require_installed)
  require_file("${SLUICE}" "run the package_install test first (ctest -R package_)")
endfunction()

# Configures, builds and runs the unit tests of an out-of-tree project against ${PREFIX}.
function(build_out_of_tree what src bin)
  file(REMOVE_RECURSE "${bin}")
  set(make_program)
  if(MAKE_PROGRAM)
    set(make_program "-DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM}")
  endif()
  run("configuring ${what} against the installed SDK (find_package(SluiceSDK 1) with "
      "CMAKE_PREFIX_PATH=${PREFIX})"
      COMMAND "${CMAKE_COMMAND}" -S "${src}" -B "${bin}" -G "${GENERATOR}" ${make_program}
              "-DCMAKE_CXX_COMPILER=${CXX}" "-DCMAKE_PREFIX_PATH=${PREFIX}"
              "-DCMAKE_CXX_FLAGS=${WARNINGS}")
  run("building ${what}" COMMAND "${CMAKE_COMMAND}" --build "${bin}")
endfunction()

function(check_lists plugin_dirs ids)
  set(args)
  foreach(d IN LISTS plugin_dirs)
    list(APPEND args --plugins "${d}")
  endforeach()
  run("installed sluice plugins list" COMMAND "${SLUICE}" plugins list ${args} OUT out)
  foreach(id IN LISTS ids)
    if(NOT out MATCHES "(^|\n)${id} ")
      message(FATAL_ERROR "`sluice plugins list ${args}` does not list ${id}:\n${out}")
    endif()
  endforeach()
endfunction()

# ---------------------------------------------------------------------------------------------
if(STEP STREQUAL "install")
  file(REMOVE_RECURSE "${STAGE}")
  # A staged install of the prefix /opt/sluice, as `DESTDIR=... cmake --install` in a Debian
  # package build; the staged tree must work where it is (relocatable package, relative
  # plugin search).
  set(ENV{DESTDIR} "${STAGE}")
  run("cmake --install of the build tree ${BUILD_DIR} (is it fully built?)"
      COMMAND "${CMAKE_COMMAND}" --install "${BUILD_DIR}" --prefix /opt/sluice)
  unset(ENV{DESTDIR})
  set(cmake_dir "${PREFIX}/${LIBDIR}/cmake/SluiceSDK")
  foreach(f SluiceSDKConfig.cmake SluiceSDKConfigVersion.cmake SluiceSDKTargets.cmake
            SluicePlugin.cmake)
    require_file("${cmake_dir}/${f}" "the SluiceSDK package is not installed (sdk/CMakeLists.txt)")
  endforeach()
  foreach(h abi.h version.h sdk.hpp sdk/plugin.hpp sdk/config.hpp sdk/message.hpp
            sdk/template.hpp sdk/json.hpp sdk/testing.hpp)
    require_file("${PREFIX}/include/sluice/${h}" "SDK header not installed")
  endforeach()
  require_file("${SLUICE}" "the sluice binary is not installed (core/CMakeLists.txt)")
  # The SDK promises plugin authors nothing but the C++ standard library.
  file(GLOB_RECURSE headers "${PREFIX}/include/sluice/*")
  foreach(h IN LISTS headers)
    file(STRINGS "${h}" bad REGEX "#[ \t]*include[ \t]*[<\"](boost|yaml-cpp|spdlog)/")
    if(bad)
      message(FATAL_ERROR "installed SDK header ${h} includes a host dependency: ${bad}")
    endif()
  endforeach()
  # SameMajorVersion: find_package(SluiceSDK 1) accepts 1.x (x >= the request), not 2 or 0.
  file(STRINGS "${SOURCE_DIR}/sdk/include/sluice/version.h" major_line
       REGEX "#define SLUICE_SDK_VERSION_MAJOR ")
  string(REGEX MATCH "[0-9]+" major "${major_line}")
  math(EXPR next "${major} + 1")
  math(EXPR previous "${major} - 1")
  foreach(request_ok IN ITEMS "${major};TRUE" "${major}.0;TRUE" "${next};FALSE"
                              "${previous};FALSE" "${major}.999;FALSE")
    list(GET request_ok 0 PACKAGE_FIND_VERSION)
    list(GET request_ok 1 want)
    string(REPLACE "." ";" parts "${PACKAGE_FIND_VERSION}.0")
    list(GET parts 0 PACKAGE_FIND_VERSION_MAJOR)
    list(GET parts 1 PACKAGE_FIND_VERSION_MINOR)
    set(PACKAGE_VERSION_COMPATIBLE)
    include("${cmake_dir}/SluiceSDKConfigVersion.cmake")
    if((want AND NOT PACKAGE_VERSION_COMPATIBLE) OR (NOT want AND PACKAGE_VERSION_COMPATIBLE))
      message(FATAL_ERROR "SluiceSDKConfigVersion.cmake ${PACKAGE_VERSION}: a request for "
                          "${PACKAGE_FIND_VERSION} should be compatible=${want} (SameMajorVersion)")
    endif()
  endforeach()
  # The installed sluice finds the installed plugins with no configuration at all.
  foreach(id IN LISTS SHIPPED)
    require_file("${PREFIX}/${LIBDIR}/sluice/plugins/${id}/plugin.yaml"
                 "plugin ${id} not installed")
  endforeach()
  check_lists("" "${SHIPPED}")
  run("installed sluice version" COMMAND "${SLUICE}" version OUT out)
  message(STATUS "installed into ${PREFIX}: ${out}")

# ---------------------------------------------------------------------------------------------
elseif(STEP STREQUAL "examples_build")
  require_installed()
  build_out_of_tree("sdk/examples" "${SOURCE_DIR}/sdk/examples" "${EXAMPLES_BUILD}")
  foreach(id counter-source uppercase-transform stdout-sink)
    require_file("${EXAMPLES_BUILD}/plugins/${id}/sluice-${id}.so" "example ${id} not built")
    require_file("${EXAMPLES_BUILD}/plugins/${id}/plugin.yaml" "example ${id}: no plugin.yaml")
  endforeach()

elseif(STEP STREQUAL "examples_unit")
  run("the examples' unit tests (testing kit + Catch2)"
      COMMAND "${CMAKE_CTEST_COMMAND}" --test-dir "${EXAMPLES_BUILD}" --output-on-failure OUT out)
  if(NOT out MATCHES "100% tests passed, 0 tests failed out of 3")
    message(FATAL_ERROR "expected 3 example unit tests to pass:\n${out}")
  endif()

elseif(STEP STREQUAL "examples_route")
  require_installed()
  set(plugins "${EXAMPLES_BUILD}/plugins")
  check_lists("${plugins}" "counter-source;uppercase-transform;stdout-sink")
  foreach(id counter-source uppercase-transform stdout-sink)
    run("sluice plugins describe ${id}"
        COMMAND "${SLUICE}" plugins describe ${id} --format json --plugins "${plugins}" OUT out)
    if(NOT out MATCHES "\"id\": *\"${id}\"")
      message(FATAL_ERROR "describe ${id} printed no id:\n${out}")
    endif()
  endforeach()
  set(route "${SOURCE_DIR}/sdk/examples/route.yaml")
  run("sluice check of sdk/examples/route.yaml"
      COMMAND "${SLUICE}" check --plugins "${plugins}" --routes "${route}" OUT out)
  if(NOT out MATCHES "examples: counter-source -> uppercase-transform -> stdout-sink")
    message(FATAL_ERROR "sluice check did not show the route:\n${out}")
  endif()
  run("sluice run of sdk/examples/route.yaml"
      COMMAND "${SLUICE}" run --plugins "${plugins}" --routes "${route}" OUT out ERR err)
  set(expected "")
  foreach(n RANGE 1 5)
    string(APPEND expected "examples/counter [counter] MESSAGE ${n}\n")
  endforeach()
  if(NOT out STREQUAL expected)
    message(FATAL_ERROR "the route counter-source -> uppercase-transform -> stdout-sink printed"
                        "\n${out}\ninstead of\n${expected}\n--- log\n${err}")
  endif()
  if(NOT err MATCHES "delivered 5, errors 0")
    message(FATAL_ERROR "the route did not report 5 delivered messages:\n${err}")
  endif()

# ---------------------------------------------------------------------------------------------
elseif(STEP STREQUAL "scaffold_new")
  require_installed()
  file(REMOVE_RECURSE "${SCAFFOLDS}")
  file(MAKE_DIRECTORY "${SCAFFOLDS}")
  foreach(kind source transform sink)
    run("sluice plugins new my-${kind} --kind ${kind}"
        COMMAND "${SLUICE}" plugins new my-${kind} --kind ${kind} WORKING_DIRECTORY "${SCAFFOLDS}"
        OUT out)
    foreach(f CMakeLists.txt plugin.yaml README.md src/my-${kind}.cpp tests/my-${kind}_test.cpp)
      require_file("${SCAFFOLDS}/my-${kind}/${f}" "`sluice plugins new` did not write it")
    endforeach()
    if(NOT out MATCHES "-DCMAKE_PREFIX_PATH=${PREFIX}")
      message(FATAL_ERROR "`sluice plugins new` did not point at its SDK prefix:\n${out}")
    endif()
  endforeach()
  # --dir, and the refusals.
  run("sluice plugins new --dir" COMMAND "${SLUICE}" plugins new other-sink --kind sink
      --dir "${SCAFFOLDS}/nested/other")
  require_file("${SCAFFOLDS}/nested/other/src/other-sink.cpp" "--dir was not honoured")
  run("sluice plugins new into an existing directory (must refuse)" EXPECT 1
      COMMAND "${SLUICE}" plugins new my-sink --kind sink WORKING_DIRECTORY "${SCAFFOLDS}" ERR err)
  if(NOT err MATCHES "already exists")
    message(FATAL_ERROR "refusal to overwrite does not say why: ${err}")
  endif()
  foreach(bad My_Sink 9lives -sink sink- a--b)
    run("sluice plugins new ${bad} (invalid id, must refuse)" EXPECT 2
        COMMAND "${SLUICE}" plugins new ${bad} --kind sink WORKING_DIRECTORY "${SCAFFOLDS}")
  endforeach()
  run("sluice plugins new without --kind (must refuse)" EXPECT 2
      COMMAND "${SLUICE}" plugins new fine-id WORKING_DIRECTORY "${SCAFFOLDS}")
  if(EXISTS "${SCAFFOLDS}/My_Sink" OR EXISTS "${SCAFFOLDS}/fine-id")
    message(FATAL_ERROR "a refused `sluice plugins new` left a directory behind")
  endif()

elseif(STEP MATCHES "^scaffold_build_(.+)$")
  require_installed()
  set(id "my-${CMAKE_MATCH_1}")
  require_file("${SCAFFOLDS}/${id}/CMakeLists.txt" "run package_scaffold_new first")
  build_out_of_tree("the ${id} scaffold" "${SCAFFOLDS}/${id}" "${SCAFFOLDS}/${id}/build")
  run("the ${id} scaffold's unit test"
      COMMAND "${CMAKE_CTEST_COMMAND}" --test-dir "${SCAFFOLDS}/${id}/build" --output-on-failure)
  check_lists("${SCAFFOLDS}/${id}/build/plugins" "${id}")

elseif(STEP STREQUAL "scaffold_route")
  require_installed()
  set(dirs)
  foreach(kind source transform sink)
    list(APPEND dirs "${SCAFFOLDS}/my-${kind}/build/plugins")
  endforeach()
  check_lists("${dirs}" "my-source;my-transform;my-sink")
  file(WRITE "${SCAFFOLDS}/route.yaml"
       "route: scaffolds\nsource:\n  my-source: {}\ntransforms:\n  - my-transform: {}\n"
       "sink:\n  my-sink: {}\n")
  set(args)
  foreach(d IN LISTS dirs)
    list(APPEND args --plugins "${d}")
  endforeach()
  run("sluice run of the three scaffolds as one route"
      COMMAND "${SLUICE}" run ${args} --routes "${SCAFFOLDS}/route.yaml" ERR err)
  foreach(n 0 1 2)
    if(NOT err MATCHES "my-source: >message ${n}")
      message(FATAL_ERROR "the scaffolded sink did not log message ${n}:\n${err}")
    endif()
  endforeach()

else()
  message(FATAL_ERROR "package_test.cmake: unknown STEP '${STEP}'")
endif()
