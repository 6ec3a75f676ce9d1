# sluice_add_plugin(<id> SOURCES <files...> [LINK <libs...>] [MANIFEST <plugin.yaml>]
#                   [OUTPUT_DIR <dir>])
#
# Builds the plugin library `sluice-<id>.so` (no "lib" prefix; only its entry symbol exported)
# as target `sluice_plugin_<id with - as _>` (also returned in SLUICE_LAST_PLUGIN_TARGET), and
# places it with its plugin.yaml in <OUTPUT_DIR>/<id>/, the layout `sluice` searches: point
# `sluice --plugins <OUTPUT_DIR>` (or SLUICE_PLUGIN_PATH) at it to load the build output as is.
#
#   SOURCES     the plugin's sources (required)
#   LINK        extra libraries, linked PRIVATE (Sluice::sdk is always linked)
#   MANIFEST    the plugin.yaml (default: ${CMAKE_CURRENT_SOURCE_DIR}/plugin.yaml)
#   OUTPUT_DIR  default: ${SLUICE_PLUGIN_OUTPUT_DIR} when set, else ${CMAKE_BINARY_DIR}/plugins
#
# `cmake --install` puts the library and plugin.yaml in
# ${SLUICE_PLUGIN_INSTALL_DIR}/<id>/ (default ${CMAKE_INSTALL_LIBDIR}/sluice/plugins/<id>/),
# where an installed `sluice` of the same prefix finds them.
#
# Used by Sluice's own plugins and, installed with the SluiceSDK package, by third parties:
# so it relies on nothing of Sluice's build tree. (Inside it, SLUICE_PLUGIN_OUTPUT_DIR and
# sluice_enable_warnings() exist and are used; elsewhere they are simply absent.)
include_guard(GLOBAL)
include(GNUInstallDirs)

function(sluice_add_plugin id)
  cmake_parse_arguments(ARG "" "MANIFEST;OUTPUT_DIR" "SOURCES;LINK" ${ARGN})
  if(NOT id MATCHES "^[a-z0-9]+(-[a-z0-9]+)*$")
    message(FATAL_ERROR "sluice_add_plugin(${id}): plugin ids are kebab-case, e.g. my-sink")
  endif()
  if(NOT ARG_SOURCES)
    message(FATAL_ERROR "sluice_add_plugin(${id}): SOURCES is required")
  endif()
  if(NOT ARG_MANIFEST)
    set(ARG_MANIFEST "${CMAKE_CURRENT_SOURCE_DIR}/plugin.yaml")
  endif()
  if(NOT EXISTS "${ARG_MANIFEST}")
    message(FATAL_ERROR "sluice_add_plugin(${id}): ${ARG_MANIFEST} does not exist; a plugin "
                        "needs a plugin.yaml (id, kind, version, library) beside its library")
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
  # Hidden visibility: the library exports its entry symbol only, so two plugins built from
  # the same SDK headers never resolve each other's inline functions.
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
