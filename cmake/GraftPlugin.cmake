# graft_add_plugin(<target> SOURCES <src>... [OUTPUT_DIRECTORY <dir>] [INSTALL_DIRECTORY <dir>])
#
# Builds a graft plugin library: a MODULE library linked to graft::core, with the library's
# single export (its manifest) added. The same function builds the built-in plugins and
# third-party plugins (after find_package(graft)). Linking graft::core brings what the SDK
# headers compile against (LibTorch, Boost headers, fmt); graftConfig.cmake finds them.
set(_GRAFT_PLUGIN_EXPORT_SOURCE "${CMAKE_CURRENT_LIST_DIR}/plugin_export.cpp")

function(graft_add_plugin target)
  cmake_parse_arguments(ARG "" "OUTPUT_DIRECTORY;INSTALL_DIRECTORY" "SOURCES" ${ARGN})
  if(NOT ARG_SOURCES)
    message(FATAL_ERROR "graft_add_plugin(${target}): SOURCES is required")
  endif()
  add_library(${target} MODULE ${ARG_SOURCES} ${_GRAFT_PLUGIN_EXPORT_SOURCE})
  target_link_libraries(${target} PRIVATE graft::core)
  set_target_properties(${target} PROPERTIES
    CXX_STANDARD 17
    CXX_STANDARD_REQUIRED ON
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON
    POSITION_INDEPENDENT_CODE ON)
  if(ARG_OUTPUT_DIRECTORY)
    set_target_properties(${target} PROPERTIES LIBRARY_OUTPUT_DIRECTORY "${ARG_OUTPUT_DIRECTORY}")
  endif()
  if(ARG_INSTALL_DIRECTORY)
    install(TARGETS ${target} LIBRARY DESTINATION "${ARG_INSTALL_DIRECTORY}")
  endif()
endfunction()
