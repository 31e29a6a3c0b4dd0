"""Per-op channel rules; importing this package registers all of them."""

from onnxprune.analysis.rules import (  # noqa: F401 - imported for registration
    conv,
    depth_space,
    elementwise,
    layout,
    linear,
    norm,
    recurrent,
    reduce,
    resample,
    shape_taint,
    structure,
)
