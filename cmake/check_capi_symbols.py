"""Fails the build if the extension needs an MLIR/IREE C API symbol that the library lacks.

libIREECompiler.so exports only part of the MLIR C API (and the headers we compile against are
LLVM 22's, not IREE's own), so a call that compiles may still be unresolved at import time. This
turns that into a build error naming the symbols.
Usage: check_capi_symbols.py EXTENSION.so libIREECompiler.so
"""

import subprocess
import sys


def _symbols(path: str, undefined: bool) -> set[str]:
    flag = "--undefined-only" if undefined else "--defined-only"
    out = subprocess.run(
        ["nm", "-D", flag, path], check=True, capture_output=True, text=True
    ).stdout
    names = set()
    for line in out.splitlines():
        parts = line.split()
        if parts:
            names.add(parts[-1].split("@")[0])
    return names


def main() -> int:
    ext, lib = sys.argv[1], sys.argv[2]
    needed = {s for s in _symbols(ext, True) if s.startswith(("mlir", "ireeCompiler"))}
    missing = sorted(needed - _symbols(lib, False))
    if missing:
        print(f"error: {lib} does not export: {', '.join(missing)}", file=sys.stderr)
        return 1
    print(f"check_capi_symbols: all {len(needed)} C API symbols used are exported")
    return 0


if __name__ == "__main__":
    sys.exit(main())
