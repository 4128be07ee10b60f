"""Prints, as a CMake list: libIREECompiler.so path; mlir-c include dir ('' if none); IREE version.

Run by CMake with the build environment's Python, so it sees the build requirements.
"""

import importlib.metadata as md
import importlib.util
import pathlib
import sys


def _iree_lib() -> pathlib.Path:
    spec = importlib.util.find_spec("iree.compiler")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("iree-base-compiler is not installed in the build environment")
    lib = (
        pathlib.Path(list(spec.submodule_search_locations)[0]) / "_mlir_libs" / "libIREECompiler.so"
    )
    if not lib.exists():
        sys.exit(f"{lib} does not exist")
    return lib


def _mlir_c_include() -> str:
    try:
        files = md.files("xtc-mlir-dev") or []
    except md.PackageNotFoundError:
        files = []
    for f in files:
        parts = f.parts
        if parts[-2:] == ("mlir-c", "IR.h") and "include" in parts:
            return str(pathlib.Path(f.locate()).parent.parent)
    for cand in ("/usr/lib/llvm-22/include", "/usr/include"):
        if (pathlib.Path(cand) / "mlir-c" / "IR.h").exists():
            return cand
    return ""


print(f"{_iree_lib()};{_mlir_c_include()};{md.version('iree-base-compiler')}", end="")
