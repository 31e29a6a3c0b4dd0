"""Model I/O: load (path or ModelProto, external data, > 2 GB), normalize, save atomically.

Public API: :func:`load_model`, :func:`normalize_model`, :func:`save_model`.
"""

from onnxprune.io.load import check_model_files, load_model, validate_model_proto
from onnxprune.io.normalize import normalize_model
from onnxprune.io.save import save_model
from onnxprune.io.validate import validate_model

__all__ = [
    "check_model_files",
    "load_model",
    "normalize_model",
    "save_model",
    "validate_model",
    "validate_model_proto",
]
