"""Gradients as ONNX graphs run by ONNX Runtime (no training framework).

``build_gradient_model(model, loss, wrt)`` appends a scalar loss (:mod:`.losses`) and the
backward graph, built from one vector-Jacobian rule per op type (:mod:`.registry`,
:mod:`.rules`), to a forward model; the result returns the loss and ∂loss/∂w for every
requested initializer or activation and runs in one ONNX Runtime session.
"""

from onnxprune.autodiff.edges import expose_edges
from onnxprune.autodiff.graph import (
    build_gradient_model,
    build_loss_model,
    gradient_name,
    reachable,
)
from onnxprune.autodiff.losses import (
    Loss,
    cross_entropy,
    embedding_cosine,
    kl_divergence,
    mean_squared_error,
    one_hot,
    sum_losses,
    target_name,
)
from onnxprune.autodiff.registry import lookup_vjp, register_vjp, registered_vjp_ops
from onnxprune.autodiff.session import GradientSession
from onnxprune.autodiff.training_graph import fold_zero_pads

__all__ = [
    "GradientSession",
    "Loss",
    "build_gradient_model",
    "build_loss_model",
    "cross_entropy",
    "embedding_cosine",
    "expose_edges",
    "fold_zero_pads",
    "gradient_name",
    "kl_divergence",
    "lookup_vjp",
    "mean_squared_error",
    "one_hot",
    "reachable",
    "register_vjp",
    "registered_vjp_ops",
    "sum_losses",
    "target_name",
]
