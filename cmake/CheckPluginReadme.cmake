# cmake -DSLUICE=... -DPLUGIN_DIR=... -DID=... -DREADME=... [-DUPDATE=ON] -P CheckPluginReadme.cmake
# Compares a plugin's README.md with `sluice plugins describe <id> --format markdown`.
execute_process(
  COMMAND "${SLUICE}" plugins describe "${ID}" --format markdown --plugins "${PLUGIN_DIR}"
  OUTPUT_VARIABLE generated RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "sluice plugins describe ${ID} failed: ${err}")
endif()
if(UPDATE)
  file(WRITE "${README}" "${generated}")
  return()
endif()
if(NOT EXISTS "${README}")
  message(FATAL_ERROR "${README} is missing; run `make docs` to generate it")
endif()
file(READ "${README}" current)
if(NOT current STREQUAL generated)
  message(FATAL_ERROR "${README} is out of date with the plugin's spec; run `make docs` and commit")
endif()
