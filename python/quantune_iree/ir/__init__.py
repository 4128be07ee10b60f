"""The MLIR side, without the runtime: ONNX import to IREE's input phase, the native passes
(layer table, taps, plan → integer IR) and compiler sessions."""
