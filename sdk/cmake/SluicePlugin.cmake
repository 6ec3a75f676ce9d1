# sluice_add_plugin(<id> SOURCES <files...> [MANIFEST <plugin.yaml>] [LINK <libs...>])
#
# Builds a plugin library `sluice-<id>.so` (no "lib" prefix) with only its entry symbol
# exported, and places it with its plugin.yaml in <plugin dir>/<id>/, the layout `sluice`
# searches. Used by Sluice's own plugins and by third parties through find_package(SluiceSDK).
function(sluice_add_plugin id)
  cmake_parse_arguments(ARG "" "MANIFEST;OUTPUT_DIR" "SOURCES;LINK" ${ARGN})
  if(NOT ARG_SOURCES)
    message(FATAL_ERROR "sluice_add_plugin(${id}): SOURCES is required")
  endif()
  if(NOT ARG_MANIFEST)
    set(ARG_MANIFEST "${CMAKE_CURRENT_SOURCE_DIR}/plugin.yaml")
  endif()
  if(NOT ARG_OUTPUT_DIR)
    if(SLUICE_PLUGIN_OUTPUT_DIR)
      set(ARG_OUTPUT_DIR "${SLUICE_PLUGIN_OUTPUT_DIR}")
    else()
      set(ARG_OUTPUT_DIR "${CMAKE_BINARY_DIR}/plugins")
    endif()
  endif()
  string(REPLACE "-" "_" target_suffix "${id}")
  set(target sluice_plugin_${target_suffix})
  add_library(${target} MODULE ${ARG_SOURCES})
  set_target_properties(${target} PROPERTIES
    PREFIX ""
    OUTPUT_NAME "sluice-${id}"
    LIBRARY_OUTPUT_DIRECTORY "${ARG_OUTPUT_DIR}/${id}"
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  target_link_libraries(${target} PRIVATE Sluice::sdk ${ARG_LINK})
  if(COMMAND sluice_enable_warnings)
    sluice_enable_warnings(${target})
  endif()
  # The plugin.yaml travels with the library: copied at build time, installed beside it.
  add_custom_command(TARGET ${target} POST_BUILD
    COMMAND ${CMAKE_COMMAND} -E copy_if_different "${ARG_MANIFEST}" "${ARG_OUTPUT_DIR}/${id}/plugin.yaml")
  if(NOT DEFINED SLUICE_PLUGIN_INSTALL_DIR)
    set(SLUICE_PLUGIN_INSTALL_DIR "${CMAKE_INSTALL_LIBDIR}/sluice/plugins")
  endif()
  install(TARGETS ${target} LIBRARY DESTINATION "${SLUICE_PLUGIN_INSTALL_DIR}/${id}")
  install(FILES "${ARG_MANIFEST}" DESTINATION "${SLUICE_PLUGIN_INSTALL_DIR}/${id}")
  set(SLUICE_LAST_PLUGIN_TARGET ${target} PARENT_SCOPE)
endfunction()
