"""quantune-iree: compile-time mixed-precision (INT8/FP32) quantization of ONNX models with IREE."""

from .errors import QuantuneError

__version__ = "0.1.0"

__all__ = ["QuantuneError", "__version__"]
