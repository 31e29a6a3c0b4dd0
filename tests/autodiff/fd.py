"""Finite-difference checks of gradient models in float64 (ONNX reference evaluator)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator
from onnx.reference.op_run import OpRun

from onnxprune.autodiff import build_gradient_model, gradient_name, mean_squared_error, target_name

DOUBLE = TensorProto.DOUBLE


class ConvTranspose(OpRun):
    """A plain numpy ConvTranspose (groups, strides, dilations, pads, output_padding) for the
    reference evaluator, whose own kernel mishandles groups."""

    op_domain = ""

    def _run(
        self,
        x,
        w,
        b=None,
        auto_pad=None,
        dilations=None,
        group=None,
        kernel_shape=None,
        output_padding=None,
        output_shape=None,
        pads=None,
        strides=None,
    ):
        rank = x.ndim - 2
        strides = list(strides or [1] * rank)
        dilations = list(dilations or [1] * rank)
        pads = list(pads or [0] * (2 * rank))
        extra = list(output_padding or [0] * rank)
        group = int(group or 1)
        n, channels = x.shape[:2]
        per_group_in = channels // group
        per_group_out = w.shape[1]
        kernel = w.shape[2:]
        full = [
            s * (size - 1) + (k - 1) * d + 1 + e
            for size, k, s, d, e in zip(
                x.shape[2:], kernel, strides, dilations, extra, strict=False
            )
        ]
        out = np.zeros((n, group * per_group_out, *full), dtype=x.dtype)
        for g in range(group):
            xs = x[:, g * per_group_in : (g + 1) * per_group_in]
            ws = w[g * per_group_in : (g + 1) * per_group_in]
            for offset in np.ndindex(*kernel):
                contribution = np.einsum(
                    "nc...,cm->nm...", xs, ws[(slice(None), slice(None), *offset)]
                )
                index = tuple(
                    slice(k * d, k * d + s * (size - 1) + 1, s)
                    for k, d, s, size in zip(offset, dilations, strides, x.shape[2:], strict=False)
                )
                out[(slice(None), slice(g * per_group_out, (g + 1) * per_group_out), *index)] += (
                    contribution
                )
        crop = tuple(slice(pads[i], full[i] - pads[i + rank]) for i in range(rank))
        out = out[(slice(None), slice(None), *crop)]
        if b is not None:
            out = out + b.reshape(1, -1, *([1] * rank))
        return (out,)


class Erf(OpRun):
    """erf in the input's precision (the reference kernel rounds to float32)."""

    op_domain = ""

    def _run(self, x):
        return (np.vectorize(math.erf, otypes=[np.float64])(x).astype(x.dtype),)


class Gelu(OpRun):
    """Gelu in float64 (the reference kernel's erf rounds to float32)."""

    op_domain = ""

    def _run(self, x, approximate="none"):
        if approximate == "tanh":
            inner = math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)
            return (0.5 * x * (1 + np.tanh(inner)),)
        erf = np.vectorize(math.erf, otypes=[np.float64])
        return ((0.5 * x * (1 + erf(x / math.sqrt(2)))).astype(x.dtype),)


def _softmax_log(x, axis, opset, log):
    """Softmax with the pre-13 semantics (normalized over all axes from ``axis`` on)."""
    axis = axis % x.ndim
    shape = x.shape
    if opset < 13:
        x = x.reshape(int(np.prod(shape[:axis])), -1)
        axis = 1
    shifted = x - x.max(axis=axis, keepdims=True)
    log_norm = np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
    out = shifted - log_norm
    return (out if log else np.exp(out)).reshape(shape)


class Softmax(OpRun):
    op_domain = ""

    def _run(self, x, axis=None):
        opset = self.run_params["opsets"][""]
        axis = (1 if opset < 13 else -1) if axis is None else axis
        return (_softmax_log(x, axis, opset, log=False),)


class LogSoftmax(OpRun):
    op_domain = ""

    def _run(self, x, axis=None):
        opset = self.run_params["opsets"][""]
        axis = (1 if opset < 13 else -1) if axis is None else axis
        return (_softmax_log(x, axis, opset, log=True),)


class _OrtEvaluator:
    """ONNX Runtime with the reference evaluator's ``run(names, feeds)`` interface."""

    def __init__(self, model: onnx.ModelProto) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        self.session = ort.InferenceSession(
            model.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )

    def run(self, names, feeds):
        return self.session.run(names, feeds)


class LRN(OpRun):
    """LRN over the channel axis with the window of the ONNX spec; the reference evaluator's
    own kernel loops over the batch size instead of the channels."""

    op_domain = ""

    def _run(self, x, alpha=None, beta=None, bias=None, size=None):
        lo, hi = math.floor((size - 1) / 2), math.ceil((size - 1) / 2)
        squares = np.zeros_like(x)
        for c in range(x.shape[1]):
            window = x[:, max(0, c - lo) : min(x.shape[1], c + hi + 1)]
            squares[:, c] = (window**2).sum(axis=1)
        return ((x / (bias + alpha / size * squares) ** beta).astype(x.dtype),)


class LpNormalization(OpRun):
    """x / ‖x‖_p along ``axis`` with ‖x‖_1 = Σ|x| (the spec and ONNX Runtime); the reference
    evaluator's kernel sums x^p, which for p = 1 is Σx."""

    op_domain = ""

    def _run(self, x, axis=None, p=None):
        norm = (np.abs(x) ** p).sum(axis=axis, keepdims=True) ** (1.0 / p)
        return ((x / norm).astype(x.dtype),)


class MeanVarianceNormalization(OpRun):
    """(x − E_A[x]) / (√(E_A[x²] − E_A[x]²) + 1e-9) over ``axes`` (the spec's function body);
    the reference evaluator runs that body with a float32 ε and refuses float64 inputs."""

    op_domain = ""

    def _run(self, x, axes=None):
        axes = tuple(axes) if axes is not None else (0, 2, 3)
        mean = x.mean(axis=axes, keepdims=True)
        deviation = np.sqrt((x * x).mean(axis=axes, keepdims=True) - mean * mean)
        return (((x - mean) / (deviation + 1e-9)).astype(x.dtype),)


def evaluator(model: onnx.ModelProto, engine: str = "reference"):
    """The ONNX reference evaluator with the kernels above replaced, or ONNX Runtime (float64
    kernels exist for the pools, and it is the runtime whose semantics matter)."""
    if engine == "ort":
        return _OrtEvaluator(model)
    return ReferenceEvaluator(
        model,
        new_ops=[
            ConvTranspose, Erf, Gelu, Softmax, LogSoftmax, LRN, LpNormalization,
            MeanVarianceNormalization,
        ],
    )  # fmt: skip


def one_node_model(
    op_type: str,
    inputs: dict[str, np.ndarray],
    constants: dict[str, np.ndarray],
    order: Sequence[str],
    outputs: int = 1,
    opset: int = 18,
    **attrs,
) -> onnx.ModelProto:
    """A model of one node reading ``order`` (graph inputs from ``inputs``, initializers from
    ``constants``; '' for an absent input)."""
    elem = helper.np_dtype_to_tensor_dtype(next(iter(inputs.values())).dtype) if inputs else DOUBLE
    node = helper.make_node(
        op_type, list(order), [f"y{i}" for i in range(outputs)], name="node", **attrs
    )
    graph = helper.make_graph(
        [node],
        "g",
        [
            helper.make_tensor_value_info(
                name, helper.np_dtype_to_tensor_dtype(v.dtype), list(v.shape)
            )
            for name, v in inputs.items()
        ],
        [helper.make_tensor_value_info(f"y{i}", elem, None) for i in range(outputs)],
        [numpy_helper.from_array(v, name) for name, v in constants.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return onnx.shape_inference.infer_shapes(model, strict_mode=True)


def check_gradients(
    model: onnx.ModelProto,
    feeds: dict[str, np.ndarray],
    wrt: Sequence[str],
    *,
    outputs: Sequence[str] | None = None,
    seed: int = 0,
    eps: float = 1e-6,
    tol: float = 1e-6,
    directions: int = 3,
    engine: str = "reference",
    full_check: bool = True,
) -> None:
    """Assert ∂L/∂w of the gradient model matches central differences of the forward model,
    L = Σ_outputs mean((y − t)²) with random targets t, along random directions
    (``full_check=False``: the gradient model skips onnx's strict inference, for an op whose
    function body onnx cannot infer in float64)."""
    rng = np.random.default_rng(seed)
    chosen = list(outputs) if outputs else [v.name for v in model.graph.output]
    forward = evaluator(model, engine)
    values = dict(zip(chosen, forward.run(chosen, feeds), strict=True))
    targets = {
        target_name(name): rng.standard_normal(value.shape).astype(value.dtype)
        for name, value in values.items()
    }
    loss = mean_squared_error(model, chosen)
    grad_model = build_gradient_model(model, loss, wrt)
    onnx.checker.check_model(grad_model, full_check=full_check)
    run = evaluator(grad_model, engine)
    initializers = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    base = {**feeds, **targets}
    results = dict(
        zip(
            [o.name for o in grad_model.graph.output],
            run.run(None, base),
            strict=True,
        )
    )

    def loss_at(name: str, value: np.ndarray) -> float:
        out = run.run([loss.output], {**base, name: value})[0]
        return float(out)

    for name in wrt:
        grad = results[gradient_name(name)]
        point = feeds[name] if name in feeds else initializers[name]
        assert grad.shape == point.shape, (name, grad.shape, point.shape)
        for _ in range(directions):
            d = rng.standard_normal(point.shape)
            plus = loss_at(name, point + eps * d)
            minus = loss_at(name, point - eps * d)
            numeric = (plus - minus) / (2 * eps)
            analytic = float(np.sum(grad * d))
            scale = max(abs(numeric), abs(analytic), 1e-3)
            assert abs(numeric - analytic) <= tol * scale + 1e-8, (name, numeric, analytic)
