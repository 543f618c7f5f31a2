# graft_add_plugin(<target> SOURCES <src>... [OUTPUT_DIRECTORY <dir>] [INSTALL_DIRECTORY <dir>])
#
# Builds a graft plugin library: a MODULE library linked to graft::core, with the library's
# single export (its manifest) added. The same function builds the built-in plugins and
# third-party plugins (after find_package(graft)). Linking graft::core brings what the SDK
# headers compile against (LibTorch, Boost headers, fmt); graftConfig.cmake finds them.
#
# LibTorch's headers cost ~20 s per source file: every plugin of a project reuses one
# precompiled <torch/torch.h> (built once, by the target graft_plugin_pch), so a source
# file then compiles in a few seconds. -DGRAFT_PLUGIN_PCH=OFF turns it off; graft's own
# build turns it off and shares its own precompiled header instead (graft_use_pch).
set(_GRAFT_PLUGIN_EXPORT_SOURCE "${CMAKE_CURRENT_LIST_DIR}/plugin_export.cpp")
set(_GRAFT_PLUGIN_PCH_SOURCE "${CMAKE_CURRENT_LIST_DIR}/plugin_pch.cpp")
option(GRAFT_PLUGIN_PCH "graft_add_plugin(): one precompiled LibTorch header for the project's plugins" ON)

function(_graft_plugin_properties target)
  target_link_libraries(${target} PRIVATE graft::core)
  set_target_properties(${target} PROPERTIES
    CXX_STANDARD 17
    CXX_STANDARD_REQUIRED ON
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON
    POSITION_INDEPENDENT_CODE ON)
endfunction()

function(graft_add_plugin target)
  cmake_parse_arguments(ARG "" "OUTPUT_DIRECTORY;INSTALL_DIRECTORY" "SOURCES" ${ARGN})
  if(NOT ARG_SOURCES)
    message(FATAL_ERROR "graft_add_plugin(${target}): SOURCES is required")
  endif()
  add_library(${target} MODULE ${ARG_SOURCES} ${_GRAFT_PLUGIN_EXPORT_SOURCE})
  _graft_plugin_properties(${target})
  # the export includes no LibTorch: it compiles while the precompiled header is being built
  set_source_files_properties(${_GRAFT_PLUGIN_EXPORT_SOURCE} PROPERTIES SKIP_PRECOMPILE_HEADERS ON)
  if(GRAFT_PLUGIN_PCH)
    # one precompiled header per project, compiled with the plugins' own flags
    if(NOT TARGET graft_plugin_pch)
      add_library(graft_plugin_pch OBJECT ${_GRAFT_PLUGIN_PCH_SOURCE})
      _graft_plugin_properties(graft_plugin_pch)
      target_precompile_headers(graft_plugin_pch PRIVATE <torch/torch.h>)
    endif()
    target_precompile_headers(${target} REUSE_FROM graft_plugin_pch)
  endif()
  if(ARG_OUTPUT_DIRECTORY)
    set_target_properties(${target} PROPERTIES LIBRARY_OUTPUT_DIRECTORY "${ARG_OUTPUT_DIRECTORY}")
  endif()
  if(ARG_INSTALL_DIRECTORY)
    install(TARGETS ${target} LIBRARY DESTINATION "${ARG_INSTALL_DIRECTORY}")
  endif()
endfunction()
