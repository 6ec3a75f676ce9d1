# With SLUICE_SANITIZE every target (host, plugins, tests) is built with ASan+UBSan, so a
# plugin's memory error is caught inside the host process that loads it.
if(SLUICE_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all)
  add_link_options(-fsanitize=address,undefined)
endif()

# The fuzz build instruments everything for coverage as well; only the fuzz targets link the
# libFuzzer driver (-fsanitize=fuzzer on their link line, tests/fuzz).
if(SLUICE_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "SLUICE_FUZZ needs clang (libFuzzer): configure with the `fuzz` preset")
  endif()
  add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer
                      -fno-sanitize-recover=all)
  add_link_options(-fsanitize=address,undefined)
endif()
