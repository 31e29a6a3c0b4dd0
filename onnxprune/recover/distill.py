"""Distillation recovery: a short Adam run on the pruned model's initializers, in numpy, with
ONNX gradients (no training framework).

The pruned model (its graph never changes, only initializer values) is trained to match the
unpruned model on unlabeled calibration mini-batches:

    L = ℓ(y, r)  [+ w · Σ_t mean((f_t − f_t^ref)²)]

with ℓ the registered output loss named by ``loss`` (:mod:`onnxprune.recover.distill_losses`:
``kl`` = T² · mean KL(softmax(r/T) ‖ softmax(y/T)) for logits, ``mse`` for embeddings), r the
unpruned model's outputs (computed once per sample) and optional feature tensors
f_t present with the same shape in both models. One ONNX Runtime session of the gradient
model (:func:`onnxprune.autodiff.build_gradient_model`, trainable initializers fed as inputs)
serves every step; a second session of the loss alone scores a held-out share of the
calibration samples every ``eval_every`` steps. The parameters with the lowest held-out loss
are kept (the starting point included, so distillation never makes the held-out loss worse),
and training stops after ``patience`` evaluations without improvement. Adam (Kingma & Ba):
m ← β₁m + (1−β₁)g, v ← β₂v + (1−β₂)g², w ← w − lr·m̂/(√v̂ + ε), in float32. Mini-batches are
drawn without augmentation from a generator seeded by ``seed``, so a run is deterministic.
Memory: the calibration samples (≤ ``max_samples``), the reference outputs, and three copies
of the trainable parameters (Adam moments and the best values).

``parameters`` names which initializers train (:data:`PARAMETER_SETS`): every float one the
loss depends on, or all but the weights of grouped (depthwise) convolutions, whose filter
gradient is the most expensive part of the backward graph on compact CNNs and which hold few
values; ``schedule`` "cosine" lowers the learning rate as lr·(1 + cos(π·t/steps))/2;
``max_seconds`` stops the steps when the time is up (the held-out loss is then scored once
more, and the best parameters are kept as always).

Initializers that a Gather reads with run-time indices (token and position embedding
tables) never train (:func:`_lookup_tables`), nor do single-value initializers: exporters
write the constants of a function as scalars (GELU's 0.5, an attention scale, the 1 of an
attention mask's (1 − m)·min(float32)), and training them changes the function — the 1 of a
BERT mask got gradients of 8.7e27 (from the −3.4e38 fill) and any drift would mask the real
tokens. A single learned scalar (PReLU with one slope) stays as it is too.

``base="lsq"`` first applies the least-squares refit (``lsq+distill``).

Outputs compared: the float32 graph outputs; for the KL losses, an output produced by a
Softmax over the loss's class axis is replaced by that Softmax's input, the logits
(:func:`logits_behind_softmax`), and the loss is built on a copy of the pruned model that
exposes them.

``keep_zeros`` (default on): every trainable weight that is exactly zero at the start stays
zero (projected Adam on the fixed support: after each step w ← w ⊙ m, m = [w₀ ≠ 0]), so the
masks of a sparsified model (unstructured or N:M) survive distillation. Trained dense weights
are almost never exactly zero, so the projection costs a dense model nothing; arrays without a
zero are not projected at all.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from onnx import ModelProto, helper, numpy_helper

from onnxprune.analysis import ChannelAnalysis
from onnxprune.autodiff import (
    GradientSession,
    build_gradient_model,
    build_loss_model,
    fold_zero_pads,
    gradient_name,
    mean_squared_error,
    reachable,
    sum_losses,
    target_name,
)
from onnxprune.autodiff.precision import float32_feeds
from onnxprune.autodiff.prepare import gradient_ready
from onnxprune.calibrate.labelled import Samples, batch_starts, fixed_batch, load_samples
from onnxprune.calibrate.session import exposed_model, make_session
from onnxprune.errors import InputError
from onnxprune.graph.tensor_outputs import tensor_output_model
from onnxprune.recover.distill_losses import lookup_distill_loss

FLOAT = 1
LSQ_START_LR = 3e-6  # Adam step size when distillation starts from a least-squares refit


def _grouped_conv_weights(model: ModelProto) -> set[str]:
    """Weights (input 1) of Conv/ConvTranspose nodes with ``group`` > 1."""
    names = set()
    for node in model.graph.node:
        if node.op_type in ("Conv", "ConvTranspose") and len(node.input) > 1:
            group = next((a.i for a in node.attribute if a.name == "group"), 1)
            if group > 1:
                names.add(node.input[1])
    return names


def _lookup_tables(model: ModelProto) -> set[str]:
    """Initializers read by a Gather whose indices are computed at run time (token and
    position embedding tables). They never train: a batch moves only the rows it looks up,
    which fits the calibration vocabulary, and the gradient would be a scatter into the
    whole table on every step."""
    constants = {init.name for init in model.graph.initializer}
    return {
        node.input[0]
        for node in model.graph.node
        if node.op_type == "Gather" and len(node.input) > 1 and node.input[1] not in constants
    }


def _all_parameters(model: ModelProto, candidates: list[str]) -> list[str]:
    """Every float initializer the loss depends on."""
    return candidates


def _skip_grouped(model: ModelProto, candidates: list[str]) -> list[str]:
    """All but the weights of grouped (depthwise) convolutions: their biases, every dense
    (pointwise, full) conv and Gemm/MatMul weight still train."""
    grouped = _grouped_conv_weights(model)
    return [name for name in candidates if name not in grouped]


def _biases(model: ModelProto, candidates: list[str]) -> list[str]:
    """Only the bias inputs (position 2) of Conv/ConvTranspose/Gemm: per-channel shifts, where
    BatchNormalization was folded; few values, so little room to overfit few images."""
    biases = {
        node.input[2]
        for node in model.graph.node
        if node.op_type in ("Conv", "ConvTranspose", "Gemm") and len(node.input) > 2
    }
    return [name for name in candidates if name in biases]


PARAMETER_SETS: dict[str, Callable[[ModelProto, list[str]], list[str]]] = {
    "all": _all_parameters,
    "skip-grouped": _skip_grouped,
    "biases": _biases,
}


@dataclass
class DistillReport:
    """What the last distillation did (read by reports and benchmarks)."""

    steps: int = 0
    seconds: float = 0.0
    best_step: int = 0
    heldout_before: float = float("nan")
    heldout_after: float = float("nan")
    parameters: int = 0
    history: list[tuple[int, float]] = field(default_factory=list)

    @property
    def steps_per_second(self) -> float:
        return self.steps / self.seconds if self.seconds > 0 else 0.0


class _Adam:
    def __init__(self, params: dict[str, np.ndarray], lr: float, b1=0.9, b2=0.999, eps=1e-8):
        self.lr, self.b1, self.b2, self.eps = lr, b1, b2, eps
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}
        self.t = 0

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        self.t += 1
        c1 = 1 - self.b1**self.t
        c2 = 1 - self.b2**self.t
        for name, value in params.items():
            g = grads[name]
            m, v = self.m[name], self.v[name]
            m *= self.b1
            m += (1 - self.b1) * g
            v *= self.b2
            v += (1 - self.b2) * g * g
            value -= (self.lr / c1) * m / (np.sqrt(v / c2) + self.eps)


def _split(
    count: int, holdout: float, seed: int, multiple: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded train / held-out indices; the held-out count is rounded up to ``multiple``
    (a fixed model batch) and left empty when fewer than 20 samples or no training batch
    would remain."""
    order = np.random.default_rng(seed).permutation(count)
    held = round(count * holdout) if count >= 20 else 0
    held = -(-held // multiple) * multiple
    if count - held < multiple:
        held = 0
    return order[held:], order[:held]


def _reference_outputs(
    model: ModelProto, samples: Samples, names: list[str], batch: int, fixed: int | None
):
    """The unpruned model's ``names`` for the samples of :func:`batch_starts` (with a fixed
    model batch the ragged tail is left out, and never drawn)."""
    exposed = exposed_model(model, names, {}) if set(names) - _outputs(model) else model
    session = make_session(exposed)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for start, stop in batch_starts(len(samples), batch, fixed):
        index = np.arange(start, stop)
        feeds = float32_feeds(samples.take(index))
        for name, value in zip(names, session.run(names, feeds), strict=True):
            parts[name].append(value)
    return {name: np.concatenate(values) for name, values in parts.items()}


def _outputs(model: ModelProto) -> set[str]:
    return {value.name for value in model.graph.output}


def distill(
    original: ModelProto,
    pruned: ModelProto,
    samples: Samples,
    *,
    steps: int = 200,
    batch_size: int = 32,
    lr: float = 1e-3,
    temperature: float = 1.0,
    features: Sequence[str] = (),
    feature_weight: float = 1.0,
    loss: str = "kl",
    holdout: float = 0.1,
    eval_every: int = 25,
    patience: int = 3,
    seed: int = 0,
    parameters: str = "all",
    schedule: str = "constant",
    max_seconds: float | None = None,
    keep_zeros: bool = True,
    progress: Callable[[str], None] | None = None,
    report: DistillReport | None = None,
) -> ModelProto:
    """The pruned model with its trainable initializers distilled toward ``original``."""
    if steps < 0 or batch_size < 1 or lr <= 0:
        raise InputError("distill needs steps >= 0, batch_size >= 1 and lr > 0")
    if parameters not in PARAMETER_SETS:
        known = ", ".join(PARAMETER_SETS)
        raise InputError(f"distill parameters must be one of {known}, got '{parameters}'")
    if schedule not in ("constant", "cosine"):
        raise InputError(f"distill schedule must be 'constant' or 'cosine', got '{schedule}'")
    report = report if report is not None else DistillReport()
    # Half-precision models train float32 copies; the values go back in the model's own
    # types (autodiff.precision).
    written = pruned  # ZipMap outputs: trained on the probability tensors they view
    original = gradient_ready(tensor_output_model(original), samples.feeds)
    pruned = gradient_ready(tensor_output_model(pruned), samples.feeds)
    graph_outputs = _float_outputs(pruned)
    pruned_names = {out for node in pruned.graph.node for out in node.output}
    original_names = {out for node in original.graph.node for out in node.output}
    outputs = [  # the logits only where the unpruned model has the same tensor
        logits if logits in original_names else output
        for output, logits in zip(
            graph_outputs, logits_behind_softmax(pruned, graph_outputs, loss), strict=True
        )
    ]
    missing = [name for name in features if name not in pruned_names or name not in original_names]
    if missing:
        raise InputError(f"feature tensor(s) not in both models: {', '.join(missing)}")
    # the loss and the training graph read the logits as graph outputs (values are written
    # back to ``pruned`` itself, whose graph never changes)
    exposed = list(dict.fromkeys([*outputs, *features]))
    scored = (
        pruned
        if outputs == graph_outputs
        else exposed_model(pruned, exposed, dict.fromkeys(exposed, FLOAT))
    )
    loss = lookup_distill_loss(loss)(scored, outputs, temperature)
    if features:
        mse = mean_squared_error(scored, list(features))
        loss = sum_losses(scored, [loss, mse], [1.0, feature_weight])
    tables = _lookup_tables(pruned)
    candidates = [
        init.name
        for init in pruned.graph.initializer
        if init.data_type == FLOAT and init.name not in tables and math.prod(init.dims) > 1
    ]
    trainable = PARAMETER_SETS[parameters](pruned, reachable(scored, loss, candidates))
    if not trainable or steps == 0:
        return written
    initial = {
        init.name: numpy_helper.to_array(init).copy()
        for init in pruned.graph.initializer
        if init.name in set(trainable)
    }
    report.parameters = int(sum(v.size for v in initial.values()))
    fixed = fixed_batch(pruned)
    if fixed is not None:
        batch_size = fixed
    reference = _reference_outputs(original, samples, [*outputs, *features], batch_size, fixed)
    usable = len(next(iter(reference.values())))
    train, held = _split(usable, holdout, seed, fixed or 1)
    if fixed is None:
        batch_size = min(batch_size, max(len(train), 1))  # few samples: smaller batches
    if len(train) < batch_size:
        raise InputError(f"distill needs at least {batch_size} training samples, has {len(train)}")
    # Same function of the same initializers, cheaper to differentiate (the result keeps
    # the pruned model's graph: only values are written back).
    training = fold_zero_pads(scored, keep=[*outputs, *features])
    gradient = GradientSession(build_gradient_model(training, loss, trainable))
    evaluate = GradientSession(build_loss_model(training, loss, trainable))
    params = {name: value.copy() for name, value in initial.items()}
    support = _supports(initial) if keep_zeros else {}
    target_of = {target_name(name): name for name in [*outputs, *features]}

    def feeds_for(index: np.ndarray) -> dict[str, np.ndarray]:
        feeds = samples.take(index)
        feeds.update({key: reference[name][index] for key, name in target_of.items()})
        feeds.update(params)
        return feeds

    def heldout_loss() -> float:
        if not len(held):
            return float("nan")
        total = 0.0
        for start in range(0, len(held), batch_size):
            index = held[start : start + batch_size]
            value = evaluate.run(feeds_for(index), [loss.output])[loss.output]
            total += float(value) * len(index)
        return total / len(held)

    rng = np.random.default_rng(seed)
    adam = _Adam(params, lr)
    best_loss = report.heldout_before = heldout_loss()
    best = {name: value.copy() for name, value in params.items()}
    report.history.append((0, best_loss))
    waited = 0
    start = time.perf_counter()
    step = 0
    order = rng.permutation(train)
    cursor = 0
    for step in range(1, steps + 1):
        if cursor + batch_size > len(order):
            order, cursor = rng.permutation(train), 0
        index = order[cursor : cursor + batch_size]
        cursor += batch_size
        result = gradient.run(feeds_for(index))
        if schedule == "cosine":
            adam.lr = lr * 0.5 * (1.0 + np.cos(np.pi * (step - 1) / steps))
        adam.step(params, {name: result[gradient_name(name)] for name in trainable})
        for name, kept in support.items():
            params[name] *= kept
        out_of_time = max_seconds is not None and time.perf_counter() - start >= max_seconds
        if step % eval_every == 0 or step == steps or out_of_time:
            current = heldout_loss() if len(held) else float(result[loss.output])
            report.history.append((step, current))
            rate = step / max(time.perf_counter() - start, 1e-9)
            if progress is not None:
                progress(
                    f"distill step {step}/{steps}: held-out loss {current:.5f} ({rate:.1f} steps/s)"
                )
            if not current >= best_loss:  # also true when best_loss is nan
                best_loss, waited, report.best_step = current, 0, step
                best = {name: value.copy() for name, value in params.items()}
            else:
                waited += 1
                if waited >= patience:
                    break
            if out_of_time:
                break
    report.steps = step
    report.seconds = time.perf_counter() - start
    report.heldout_after = best_loss
    return _with_values(written, best)


def _float_outputs(model: ModelProto) -> list[str]:
    """The graph outputs the loss compares: float32 tensors. Integer outputs (a classifier's
    predicted label) and non-tensor ones (ZipMap's maps) have no gradient."""
    names = [
        value.name
        for value in model.graph.output
        if value.type.HasField("tensor_type") and value.type.tensor_type.elem_type == FLOAT
    ]
    if not names:
        raise InputError("distill needs a float32 tensor output to compare; the model has none")
    return names


#: the class axis each KL loss reads (``None``: the output's last axis)
_KL_CLASS_AXIS = {"kl": 1, "kl_last_axis": None}


def logits_behind_softmax(model: ModelProto, outputs: list[str], loss: str) -> list[str]:
    """``outputs`` with every one that a Softmax over the loss's class axis produces replaced
    by that Softmax's input, for the KL losses. A model exported with its softmax hands out
    probabilities; the KL loss applies its own softmax, and softmax(p) is nearly uniform over
    many classes (its gradient nearly 0). KL(softmax(r/T) ‖ softmax(y/T)) on the logits is the
    distillation loss itself (Hinton et al.). Names are kept by pruning, so the unpruned model
    has the same tensor."""
    if loss not in _KL_CLASS_AXIS:
        return outputs
    producers = {name: node for node in model.graph.node for name in node.output}
    ranks = {
        value.name: len(value.type.tensor_type.shape.dim)
        for value in model.graph.output
        if value.type.HasField("tensor_type") and value.type.tensor_type.HasField("shape")
    }
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 13)
    result = []
    for name in outputs:
        node, rank = producers.get(name), ranks.get(name)
        if node is None or node.op_type != "Softmax" or not rank:
            result.append(name)
            continue
        axis = next((a.i for a in node.attribute if a.name == "axis"), -1 if opset >= 13 else 1)
        wanted = _KL_CLASS_AXIS[loss]
        wanted = rank - 1 if wanted is None else wanted
        # before opset 13 a Softmax normalizes over every axis from ``axis`` on (flattened)
        per_axis = opset >= 13 or axis % rank == rank - 1
        result.append(node.input[0] if per_axis and axis % rank == wanted else name)
    return result


def _supports(values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Float 0/1 masks of the non-zero entries of the arrays that hold at least one exact zero
    (arrays without zeros need no projection)."""
    return {
        name: (value != 0).astype(value.dtype)
        for name, value in values.items()
        if value.size and not np.all(value != 0)
    }


def _with_values(model: ModelProto, values: dict[str, np.ndarray]) -> ModelProto:
    result = ModelProto()
    result.CopyFrom(model)
    for init in result.graph.initializer:
        if init.name in values:
            dtype = helper.tensor_dtype_to_np_dtype(init.data_type)
            init.CopyFrom(numpy_helper.from_array(values[init.name].astype(dtype), init.name))
    return result


def make_distill_recovery(
    analysis: ChannelAnalysis | None,
    calibration: Any,
    *,
    base: str = "none",
    max_samples: int | None = 512,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
    lsq_options: dict | None = None,
    **options,
) -> Callable[[ChannelAnalysis, Any, ModelProto], ModelProto]:
    """``recover(analysis, removed, pruned) -> ModelProto`` like :func:`make_recovery`:
    ``base`` ("none" or "lsq") first, then :func:`distill` toward the analysed (unpruned)
    model. ``options`` go to :func:`distill` (steps, batch_size, lr, temperature, features,
    feature_weight, holdout, eval_every, patience, parameters, schedule, max_seconds; lr
    defaults to 1e-3, :data:`LSQ_START_LR` after lsq; parameters to "all", "skip-grouped"
    after lsq).
    ``recover.report`` holds the last run's :class:`DistillReport`."""
    from onnxprune.recover import make_recovery

    if calibration is None:
        raise InputError("recovery 'distill' needs calibration data (give data=...)")
    if base not in ("none", "lsq"):
        raise InputError(f"distill base must be 'none' or 'lsq', got '{base}'")
    first = make_recovery(
        base, analysis, calibration, seed=seed, progress=progress, **(lsq_options or {})
    )
    # From a least-squares refit the model is already close: smaller steps. 1e-3 overshot on
    # both digits models; on EfficientNet-Lite2 (20 % cut, batch 8) 1e-4 and 1e-5 raised the
    # held-out KL within 10 steps and never came back, 3e-6 lowered it 14 % in 94 steps
    # (docs/benchmarks.md, distill-effnet).
    options.setdefault("lr", LSQ_START_LR if base == "lsq" else 1e-3)
    # After lsq, at the same time budget on EfficientNet-Lite2, leaving depthwise weights
    # alone ran 1.4x the steps, reached a lower held-out KL at a 20 % cut and the same at 30 %.
    options.setdefault("parameters", "skip-grouped" if base == "lsq" else "all")
    cache: dict[int, Samples] = {}

    def recover(current: ChannelAnalysis, removed, pruned: ModelProto) -> ModelProto:
        current = current if current is not None else analysis
        if len(removed) == 0:
            return pruned
        model = first(current, removed, pruned)
        key = id(current.model)
        if key not in cache:
            cache.clear()
            cache[key] = load_samples(calibration, current.model, max_samples=max_samples)
        recover.report = DistillReport()
        return distill(
            current.model,
            model,
            cache[key],
            seed=seed,
            progress=progress,
            report=recover.report,
            **options,
        )

    recover.report = DistillReport()
    return recover
