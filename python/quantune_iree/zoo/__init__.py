"""Model zoo: pretrained ImageNet classifiers exported to ONNX from PyPI weight packages,
without torch."""

from .graphs import MODELS, ZooModel, export

__all__ = ["MODELS", "ZooModel", "export"]
