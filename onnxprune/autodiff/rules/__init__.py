"""Vector-Jacobian rules by op family; importing this package registers them all."""

from onnxprune.autodiff.rules import (  # noqa: F401 - registration side effects
    activation,
    conv,
    depth_space,
    elementwise,
    layout,
    linear,
    norm,
    pool,
    reduce,
    resample,
)
