"""Which pixel normalization makes a classifier's predictions on the user's photos informative.

An image folder whose preprocessing spec sets no ``scale``, ``mean``, ``std`` or
``channel_order`` (and whose model's graph does not normalize raw pixels itself) is fed as x / 255, and the loader says so.
A classifier trained on another normalization still runs on such input, silently, and every
score, refit and guard reading after that is of inputs the model never saw. This module
measures the fed choice against the usual alternatives on the folder's own photos.

For each candidate normalization c (:data:`CANDIDATES`: a pixel scale, per-channel mean and std
in RGB order, and a channel order), the class probabilities p_n^c of the N photos and their
mutual information with the photo index,

    I_c = H(p̄^c) − (1/N) Σ_n H(p_n^c),   p̄^c = (1/N) Σ_n p_n^c,   H(p) = −Σ_k p_k log p_k,

are measured (nats). I is high when each photo gets a confident prediction *and* different
photos get different ones; a wrong normalization gives unsure predictions, or one class for
every photo (a confident constant has I = 0). When the best candidate's I exceeds the fed one's
by at least ``MIN_GAIN`` nats and by the factor ``MIN_RATIO``, :func:`normalization_note`
returns a note naming it, in the spec's own keys. It is a measured suggestion and is never
applied: which normalization the model was trained with is the user's to state, and
normalizations a trained model tolerates (ImageNet mean/std against [−1, 1] on an
EfficientNet-Lite) give I within a few percent of each other, below both thresholds.

The probe runs only for one float 3-channel image input and a first output that is one score
vector per image ([N, K] or [N, K, 1, 1], K ≥ 2; probabilities are used as they are, other
scores through a softmax); on at most ``MAX_PHOTOS`` photos (the un-cropped views), one batch
per candidate.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import ModelProto

#: photos the probe reads (the first ones of the folder)
MAX_PHOTOS = 16
#: the best candidate must beat the fed normalization by this many nats ...
MIN_GAIN = 0.3
#: ... and by this factor
MIN_RATIO = 1.5

#: the model's first output on a batch, or None when ONNX Runtime refuses the batch
Classify = Callable[[np.ndarray], "np.ndarray | None"]


@dataclass(frozen=True)
class Normalization:
    """input = (pixel · scale − mean) / std per channel (RGB order), channels then reversed
    when ``channel_order`` is BGR."""

    label: str
    scale: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    channel_order: str = "RGB"

    def spec_text(self) -> str:
        """The preprocessing-spec keys that select this normalization."""
        parts = [f"scale = {self.scale:.6g}"]
        if any(self.mean):
            parts.append(f"mean = {list(self.mean)}")
        if any(value != 1 for value in self.std):
            parts.append(f"std = {list(self.std)}")
        if self.channel_order != "RGB":
            parts.append(f'channel_order = "{self.channel_order}"')
        return ", ".join(parts)


FED = Normalization("x / 255 (the default)", 1 / 255, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
CANDIDATES: tuple[Normalization, ...] = (
    FED,
    Normalization(
        "ImageNet mean/std normalization", 1 / 255, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    ),
    Normalization("[-1, 1] normalization", 1 / 255, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    Normalization("raw 0-255 pixels", 1.0, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
    Normalization(
        "Caffe normalization (BGR, mean pixel subtracted)",
        1.0,
        (123.68, 116.779, 103.939),
        (1.0, 1.0, 1.0),
        "BGR",
    ),
)


@dataclass(frozen=True)
class ProbeResult:
    """Mutual information (nats) of each candidate, by label, and the photos read."""

    information: dict[str, float]
    photos: int

    def best(self) -> Normalization:
        """The candidate of the highest information; near ties (1e-6 nats) go to the earlier
        one in :data:`CANDIDATES` (the fed normalization first)."""
        top = max(self.information.values())
        return next(c for c in CANDIDATES if self.information[c.label] >= top - 1e-6)


def mutual_information(probabilities: np.ndarray) -> float:
    """I = H(mean_n p_n) − mean_n H(p_n) of rows p_n (module doc)."""
    p = np.clip(np.asarray(probabilities, dtype=np.float64), 0.0, 1.0)

    def entropy(q: np.ndarray) -> np.ndarray:
        return -(q * np.log(np.where(q > 0, q, 1.0))).sum(axis=-1)

    return float(entropy(p.mean(axis=0)) - entropy(p).mean())


def as_probabilities(scores: np.ndarray) -> np.ndarray | None:
    """[N, K] probabilities of one score vector per image, or None when ``scores`` is not one
    ([N, K] or [N, K, 1, ...], K ≥ 2, float): rows already on the simplex are kept, others go
    through a softmax."""
    scores = np.asarray(scores)
    if scores.ndim < 2 or not np.issubdtype(scores.dtype, np.floating):
        return None
    if any(d != 1 for d in scores.shape[2:]) or scores.shape[1] < 2:
        return None
    rows = scores.reshape(scores.shape[0], scores.shape[1]).astype(np.float64)
    if not np.isfinite(rows).all():
        return None
    if rows.min() >= 0 and np.allclose(rows.sum(axis=1), 1.0, atol=1e-3):
        return rows
    shifted = np.exp(rows - rows.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def renormalized(
    fed: np.ndarray, fed_scale: float, fed_order: str, layout: str, target: Normalization
) -> np.ndarray:
    """Images fed as ``pixel · fed_scale`` (no mean/std, ``fed_order``) in ``layout``,
    re-expressed under ``target`` (float32)."""
    axis = 1 if layout == "NCHW" else -1
    shape = [1, 1, 1, 1]
    shape[axis] = 3
    pixels = np.asarray(fed, dtype=np.float64) / fed_scale
    if fed_order == "BGR":
        pixels = np.flip(pixels, axis=axis)
    mean = np.asarray(target.mean).reshape(shape)
    std = np.asarray(target.std).reshape(shape)
    out = (pixels * target.scale - mean) / std
    if target.channel_order == "BGR":
        out = np.flip(out, axis=axis)
    return np.ascontiguousarray(out, dtype=np.float32)


def probe_normalizations(
    classify: Classify, fed: np.ndarray, fed_scale: float, fed_order: str, layout: str
) -> ProbeResult | None:
    """:class:`ProbeResult` of every candidate on the photos ``fed`` (module doc), or None when
    the model's first output is not one score vector per image or the model refuses a batch."""
    photos = fed[:MAX_PHOTOS]
    information = {}
    for candidate in CANDIDATES:
        scores = classify(renormalized(photos, fed_scale, fed_order, layout, candidate))
        probabilities = None if scores is None else as_probabilities(scores)
        if probabilities is None:
            return None
        information[candidate.label] = mutual_information(probabilities)
    return ProbeResult(information, len(photos))


def normalization_note(result: ProbeResult | None) -> str:
    """A note naming the best candidate when it clearly beats the fed normalization (module
    doc), else ""."""
    if result is None:
        return ""
    best = result.best()
    fed, top = result.information[FED.label], result.information[best.label]
    if best is FED or top - fed < MIN_GAIN or top < MIN_RATIO * fed:
        return ""
    return (
        f"the model's predictions on {result.photos} of these photos are far more informative "
        f"under {best.label}: mutual information between photo and predicted class "
        f"{top:.2f} nats, against {fed:.2f} as fed; if the model was trained with it, put "
        f"{best.spec_text()} in preprocess.toml (measured, not applied)"
    )


def photo_classifier(model: ModelProto | str | os.PathLike) -> Classify | None:
    """A function running ``model``'s first output (a ModelProto or a model file) on a batch of
    its single input, or None when the model has more than one graph input (the probe is for
    plain image classifiers). A fixed batch size b runs the images b at a time (a tail short
    of b is left out). The ONNX Runtime session is made on the first call."""
    graph_model = (
        model
        if isinstance(model, ModelProto)
        else onnx.load(os.fspath(model), load_external_data=False)
    )
    initializers = {init.name for init in graph_model.graph.initializer}
    inputs = [value for value in graph_model.graph.input if value.name not in initializers]
    if len(inputs) != 1:
        return None
    name = inputs[0].name
    dims = inputs[0].type.tensor_type.shape.dim
    fixed = dims[0].dim_value if len(dims) and dims[0].HasField("dim_value") else 0
    session = []

    def classify(batch: np.ndarray) -> np.ndarray | None:
        step = fixed or len(batch)
        try:
            if not session:
                session.append(_session(model))
            first = session[0].get_outputs()[0].name
            parts = [
                session[0].run([first], {name: batch[start : start + step]})[0]
                for start in range(0, len(batch) - step + 1, step)
            ]
        except Exception:  # ONNX Runtime refused: the data door's run check reports a model
            return None  # that refuses the data as fed; the probe only stays silent
        return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)

    return classify


def _session(model: ModelProto | str | os.PathLike):
    """A CPU session of an in-memory model or a model file (its external data beside it)."""
    if isinstance(model, ModelProto):
        from onnxprune.calibrate.session import make_session

        return make_session(model)
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 4
    return ort.InferenceSession(os.fspath(model), options, providers=["CPUExecutionProvider"])


def probe_note(
    classify: Classify | None,
    fed: np.ndarray,
    fed_scale: float,
    fed_order: str,
    layout: str,
    channels: int,
) -> str:
    """:func:`normalization_note` of the probe, "" when it does not apply (no classifier, not
    3 channels) or the model refuses the candidates (:func:`photo_classifier`)."""
    if classify is None or channels != 3 or not len(fed):
        return ""
    return normalization_note(probe_normalizations(classify, fed, fed_scale, fed_order, layout))
