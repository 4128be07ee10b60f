"""quantune-iree: compile-time mixed-precision (INT8/FP32) quantization of ONNX models with IREE.

`quantize` and `analyze` (the Python API, `api.py`) load IREE on first use, so records and
decisions (`model`, `algo`) stay importable without it."""

from __future__ import annotations

from typing import Any

from .errors import QuantuneError

__version__ = "0.1.0"

__all__ = ["QuantizeResult", "QuantuneError", "__version__", "analyze", "quantize"]


def __getattr__(name: str) -> Any:
    if name in ("quantize", "analyze", "QuantizeResult"):
        # Forwarded on first use, not imported: the API sits above every layer (it runs the job),
        # and the package root, which those layers read __version__ from, stays at the bottom.
        import importlib

        return getattr(importlib.import_module(".api", __name__), name)
    raise AttributeError(f"module 'quantune_iree' has no attribute {name!r}")
