# Locates the two things the native module needs:
#   IREE_COMPILER_LIB     libIREECompiler.so inside the installed iree-base-compiler wheel
#   MLIR_C_INCLUDE_DIR    a directory holding mlir-c/IR.h (xtc-mlir-dev, or Debian libmlir-22-dev)
# and the IREE version we build against (IREE_COMPILER_VERSION).

execute_process(
  COMMAND "${Python_EXECUTABLE}" "${CMAKE_CURRENT_LIST_DIR}/locate_deps.py"
  OUTPUT_VARIABLE _qi_deps
  RESULT_VARIABLE _qi_rc
  ERROR_VARIABLE _qi_err
  OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT _qi_rc EQUAL 0)
  message(FATAL_ERROR "quantune-iree: cannot locate build dependencies: ${_qi_err}")
endif()
list(GET _qi_deps 0 _qi_lib)
list(GET _qi_deps 1 _qi_inc)
list(GET _qi_deps 2 _qi_ver)

set(IREE_COMPILER_LIB "${_qi_lib}" CACHE FILEPATH "libIREECompiler.so to link")
set(IREE_COMPILER_VERSION "${_qi_ver}" CACHE STRING "iree-base-compiler version")
if(NOT MLIR_C_INCLUDE_DIR)
  set(MLIR_C_INCLUDE_DIR "${_qi_inc}" CACHE PATH "directory holding mlir-c/IR.h")
endif()
if(NOT EXISTS "${MLIR_C_INCLUDE_DIR}/mlir-c/IR.h")
  message(FATAL_ERROR "quantune-iree: no mlir-c/IR.h under '${MLIR_C_INCLUDE_DIR}'. "
    "Install xtc-mlir-dev==22.1.8.4 (pip) or libmlir-22-dev (apt), or pass -DMLIR_C_INCLUDE_DIR=.")
endif()
message(STATUS "quantune-iree: libIREECompiler ${IREE_COMPILER_VERSION} at ${IREE_COMPILER_LIB}")
message(STATUS "quantune-iree: mlir-c headers at ${MLIR_C_INCLUDE_DIR}")

add_library(IREECompiler SHARED IMPORTED)
set_target_properties(IREECompiler PROPERTIES
  IMPORTED_LOCATION "${IREE_COMPILER_LIB}"
  IMPORTED_SONAME "libIREECompiler.so"
  INTERFACE_INCLUDE_DIRECTORIES "${MLIR_C_INCLUDE_DIR}")
