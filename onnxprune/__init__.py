"""onnxprune: prune exported ONNX models, recover accuracy without training, validate with ORT."""

from onnxprune._version import __version__

__all__ = ["__version__"]
