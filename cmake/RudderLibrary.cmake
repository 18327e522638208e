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

# rudder_parallel_sources(TARGET FILE ...)
#
# Sources whose loops split work with at::parallel_for. That function is inline in libtorch's
# headers and starts threads only where the file is compiled with OpenMP, as libtorch itself
# is; without it every such loop runs on the calling thread alone. These files skip the shared
# precompiled header, which is built without OpenMP. FILE paths are relative to the calling
# CMakeLists.txt; the options are appended, so COMPILE_OPTIONS set on a file beforehand stay.
function(rudder_parallel_sources target)
  if(NOT RUDDER_OPENMP)
    return()
  endif()
  separate_arguments(flags NATIVE_COMMAND "${OpenMP_CXX_FLAGS}")
  set_property(SOURCE ${ARGN} TARGET_DIRECTORY ${target} APPEND PROPERTY COMPILE_OPTIONS ${flags})
  set_property(SOURCE ${ARGN} TARGET_DIRECTORY ${target} APPEND PROPERTY COMPILE_DEFINITIONS
               RUDDER_OPENMP_KERNELS)
  set_property(SOURCE ${ARGN} TARGET_DIRECTORY ${target} PROPERTY SKIP_PRECOMPILE_HEADERS ON)
  # Linking only: as a usage requirement the target would pass -fopenmp to every file.
  target_link_libraries(${target} PUBLIC "$<LINK_ONLY:OpenMP::OpenMP_CXX>")
endfunction()

# Source of the libraries that are laid out but have no code yet.
file(WRITE ${PROJECT_BINARY_DIR}/rudder_empty.cpp "// A library with no sources yet.\n")
