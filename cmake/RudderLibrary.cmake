# rudder_add_library(NAME SOURCES ... DEPS ... [TORCH])
#
# One static library per folder. Every library gets the project's warnings and the repo root
# as its include root ("core/config.h"). Libraries that use libtorch share one precompiled
# header (built once, in rudder_torch_pch) so a 2-core machine compiles torch's headers once.

add_library(rudder_warnings INTERFACE)
target_compile_options(rudder_warnings INTERFACE -Wall -Wextra -Wno-unused-parameter)
if(RUDDER_WERROR)
  target_compile_options(rudder_warnings INTERFACE -Werror)
endif()

function(rudder_torch_pch_target)
  if(TARGET rudder_torch_pch)
    return()
  endif()
  file(WRITE ${CMAKE_BINARY_DIR}/rudder_torch_pch.cpp "// precompiled-header carrier\n")
  add_library(rudder_torch_pch STATIC ${CMAKE_BINARY_DIR}/rudder_torch_pch.cpp)
  target_link_libraries(rudder_torch_pch PUBLIC torch rudder_warnings)
  target_precompile_headers(rudder_torch_pch PRIVATE <torch/torch.h>)
endfunction()

function(rudder_add_library name)
  cmake_parse_arguments(ARG "TORCH" "" "SOURCES;DEPS" ${ARGN})
  add_library(${name} STATIC ${ARG_SOURCES})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR})
  target_link_libraries(${name} PUBLIC ${ARG_DEPS} PRIVATE rudder_warnings)
  if(ARG_TORCH)
    rudder_torch_pch_target()
    target_link_libraries(${name} PUBLIC torch)
    target_precompile_headers(${name} REUSE_FROM rudder_torch_pch)
  endif()
endfunction()

# Source of the libraries that are laid out but have no code yet.
file(WRITE ${PROJECT_BINARY_DIR}/rudder_empty.cpp "// A library with no sources yet.\n")
