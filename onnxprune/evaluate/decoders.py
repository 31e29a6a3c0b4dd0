"""Output decoders: model outputs → per-image detections or per-pixel label maps.

Registered by name and chosen by the user (``--decoder``), never guessed from shapes: a
decoder whose layout does not fit the outputs raises a one-line
:class:`~onnxprune.errors.InputError` listing every output's name and shape. A decoder may
register a *signature* too, ``recognizes(arrays, image_hw) -> str | None``: a description of
the match when the outputs have a layout that specific (a YOLO head's anchor count is a sum
over its strides of the image's cells; a single map at the input's size with every value in
[0, 1] is a probability mask), else None. :func:`recognized_decoders` lists the
matches so that a run without ``--task`` can say which flags would guard the task itself
(a note; nothing is chosen for the user).

Every decoder is ``fn(arrays, names, spec)`` with ``arrays`` the model's outputs (first axis =
images), ``names`` their names and ``spec`` the :class:`~onnxprune.evaluate.tasks.TaskSpec`
(thresholds). Detection decoders return one :class:`~onnxprune.evaluate.detection.Detections`
per image, segmentation decoders an int64 label map ``[N, H, W]``.

Detection (raw heads: keep candidates with score ≥ ``spec.min_score`` (at most
``MAX_CANDIDATES``), then class-aware NMS at ``spec.nms_iou``, at most
``spec.max_detections`` per image):

* ``yolov8`` — one output ``[N, 4 + C, A]``: per anchor cx, cy, w, h then C class scores;
  score = max_c s_c, label = argmax_c s_c; box = (cx − w/2, cy − h/2, cx + w/2, cy + h/2).
* ``yolov5`` — one output ``[N, A, 5 + C]``: cx, cy, w, h, objectness o, class scores;
  score = o · max_c s_c, label = argmax_c s_c.
* ``boxes-scores`` — two outputs: boxes ``[N, A, 4]`` x1, y1, x2, y2 and scores ``[N, A, C]``
  (SSD-style after box decoding); score = max_c, label = argmax_c.
* ``decoded`` — NMS already inside the model: one ``[N, K, 6]`` output (x1, y1, x2, y2,
  score, label), or ``boxes [N, K, 4]``, ``scores [N, K]``, ``labels [N, K]`` in that order,
  optionally preceded by a count ``[N]`` / ``[N, 1]`` (TensorRT EfficientNMS layout; rows past
  the count are padding). Rows with a negative label are padding. No NMS is re-applied.

Segmentation:

* ``logits`` — one output ``[N, C, H, W]`` with C ≥ 2: label = argmax over C.
* ``probability`` — one probability map ``[N, 1, H, W]`` or ``[N, H, W]`` with values in
  [0, 1] (text detection, saliency): label = [p ≥ ``spec.mask_threshold``].
* ``binary-logits`` — the same map as logits: label = [sigmoid(z) ≥ ``spec.mask_threshold``].
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from onnxprune.errors import InputError
from onnxprune.evaluate.detection import Detections, nms

TASK_DETECT = "detect"
TASK_SEGMENT = "segment"
MAX_CANDIDATES = 30000  # boxes per image entering NMS (as in common YOLO post-processing)


#: ``recognizes(arrays, (H, W)) -> description or None`` (module doc)
Signature = Callable[[Sequence[np.ndarray], tuple[int, int]], "str | None"]


@dataclass(frozen=True)
class Decoder:
    """A named decoder of one task (see module doc)."""

    name: str
    task: str
    fn: Callable[[Sequence[np.ndarray], Sequence[str], Any], Any]
    recognizes: Signature | None = None

    def __call__(self, arrays: Sequence[np.ndarray], names: Sequence[str], spec: Any) -> Any:
        arrays = [np.asarray(a) for a in arrays]
        names = list(names) if names else [f"output{i}" for i in range(len(arrays))]
        return self.fn(arrays, names, spec)


DECODERS: dict[str, Decoder] = {}


def register_decoder(
    name: str, task: str, recognizes: Signature | None = None
) -> Callable[[Callable], Callable]:
    """Decorator registering ``fn(arrays, names, spec)`` as decoder ``name`` of ``task``, with
    an optional output signature (module doc)."""

    def decorate(fn: Callable) -> Callable:
        DECODERS[name] = Decoder(name, task, fn, recognizes)
        return fn

    return decorate


def recognized_decoders(
    arrays: Sequence[np.ndarray], image_hw: tuple[int, int] | None
) -> list[tuple[Decoder, str]]:
    """(decoder, description) of every registered decoder whose signature matches the outputs
    ``arrays`` of images of size ``image_hw`` (none without an image size)."""
    if image_hw is None:
        return []
    arrays = [np.asarray(a) for a in arrays]
    found = []
    for decoder in DECODERS.values():
        if decoder.recognizes is not None and (match := decoder.recognizes(arrays, image_hw)):
            found.append((decoder, match))
    return found


#: feature strides of YOLO heads: P3–P5, and P3–P6 of the larger-input variants
YOLO_STRIDES = ((8, 16, 32), (8, 16, 32, 64))


def yolo_anchor_strides(anchors: int, image_hw: tuple[int, int], per_cell: int) -> tuple | None:
    """The stride set of :data:`YOLO_STRIDES` whose cells, ``per_cell`` anchors each, number
    ``anchors`` at ``image_hw``: Σ_s ⌈H/s⌉·⌈W/s⌉ · per_cell; None when none does."""
    height, width = image_hw
    for strides in YOLO_STRIDES:
        cells = sum(-(-height // s) * -(-width // s) for s in strides)
        if cells * per_cell == anchors:
            return strides
    return None


def _yolo_match(anchors: int, image_hw: tuple[int, int], per_cell: int, layout: str) -> str | None:
    """The description of a YOLO head of ``layout`` whose ``anchors`` are ``per_cell`` per
    cell of one stride set at ``image_hw``, or None."""
    strides = yolo_anchor_strides(anchors, image_hw, per_cell)
    if strides is None:
        return None
    return (
        f"{layout} for {per_cell} anchor(s) per cell of strides "
        f"{', '.join(map(str, strides))} at {image_hw[0]} × {image_hw[1]}"
    )


def _yolov8_signature(arrays: Sequence[np.ndarray], image_hw: tuple[int, int]) -> str | None:
    """One float [N, 4 + C, A] output whose A anchors are one per cell of strides 8/16/32(/64)."""
    if len(arrays) != 1 or arrays[0].ndim != 3 or arrays[0].shape[1] < 5:
        return None
    _, rows, anchors = arrays[0].shape
    layout = f"[N, 4 + {rows - 4}, {anchors}], a box and class scores"
    match = _yolo_match(anchors, image_hw, 1, layout)
    return None if match is None else f"{match}: a YOLOv8-style head"


def _yolov5_signature(arrays: Sequence[np.ndarray], image_hw: tuple[int, int]) -> str | None:
    """One float [N, A, 5 + C] output whose A anchors are three per cell of strides 8/16/32(/64)."""
    if not arrays or arrays[0].ndim != 3 or arrays[0].shape[2] < 6:
        return None
    _, anchors, columns = arrays[0].shape
    layout = f"[N, {anchors}, 5 + {columns - 5}], box, objectness and class scores"
    match = _yolo_match(anchors, image_hw, 3, layout)
    return None if match is None else f"{match}: a YOLOv5-style head"


def get_decoder(name: str, task: str | None = None) -> Decoder:
    """The decoder called ``name`` (of ``task`` when given); InputError when unknown."""
    decoder = DECODERS.get(name)
    if decoder is None or (task is not None and decoder.task != task):
        known = sorted(n for n, d in DECODERS.items() if task is None or d.task == task)
        what = f"{task} decoder" if task else "decoder"
        raise InputError(f"unknown {what} '{name}' (known: {', '.join(known)})")
    return decoder


def decoder_names(task: str | None = None) -> list[str]:
    """Registered decoder names (of ``task``)."""
    return [n for n, d in DECODERS.items() if task is None or d.task == task]


def describe_outputs(arrays: Sequence[np.ndarray], names: Sequence[str]) -> str:
    """``name [d0, d1, ...]`` for every output, comma separated."""
    return ", ".join(
        f"{name} {list(np.shape(array))}" for name, array in zip(names, arrays, strict=True)
    )


def mismatch(decoder: str, expected: str, arrays, names) -> InputError:
    """The one-line error of a decoder that does not fit the outputs."""
    return InputError(
        f"decoder '{decoder}' expects {expected}; the model's outputs are "
        f"{describe_outputs(arrays, names)} (choose another --decoder)"
    )


# -- detection ------------------------------------------------------------------------------


def _float(array: np.ndarray) -> np.ndarray:
    return np.asarray(array, dtype=np.float64)


def _postprocess(
    boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, spec: Any
) -> list[Detections]:
    """Per image: keep score ≥ spec.min_score (at most MAX_CANDIDATES, the best), then
    class-aware NMS."""
    result = []
    for image_boxes, image_scores, image_labels in zip(boxes, scores, labels, strict=True):
        keep = np.nonzero(image_scores >= spec.min_score)[0]
        if keep.size > MAX_CANDIDATES:
            keep = keep[np.argsort(-image_scores[keep], kind="stable")[:MAX_CANDIDATES]]
        candidates = Detections(image_boxes[keep], image_scores[keep], image_labels[keep])
        result.append(nms(candidates, spec.nms_iou, spec.max_detections))
    return result


def _centre_to_corners(boxes: np.ndarray) -> np.ndarray:
    centre, size = boxes[..., :2], boxes[..., 2:4]
    return np.concatenate((centre - size / 2, centre + size / 2), axis=-1)


def _single_rank3(name: str, expected: str, arrays, names) -> np.ndarray:
    if not arrays or arrays[0].ndim != 3:
        raise mismatch(name, expected, arrays, names)
    return _float(arrays[0])


@register_decoder("yolov8", TASK_DETECT, recognizes=_yolov8_signature)
def decode_yolov8(arrays, names, spec) -> list[Detections]:
    """[N, 4 + C, A] → cx, cy, w, h + class scores (module doc)."""
    expected = "its first output as [N, 4 + C, A] (cx, cy, w, h, C class scores per anchor)"
    head = _single_rank3("yolov8", expected, arrays, names)
    if head.shape[1] < 5:
        raise mismatch("yolov8", expected, arrays, names)
    rows = head.transpose(0, 2, 1)
    classes = rows[..., 4:]
    return _postprocess(
        _centre_to_corners(rows[..., :4]), classes.max(-1), classes.argmax(-1), spec
    )


@register_decoder("yolov5", TASK_DETECT, recognizes=_yolov5_signature)
def decode_yolov5(arrays, names, spec) -> list[Detections]:
    """[N, A, 5 + C] → cx, cy, w, h, objectness, class scores (module doc)."""
    expected = "its first output as [N, A, 5 + C] (cx, cy, w, h, objectness, C class scores)"
    rows = _single_rank3("yolov5", expected, arrays, names)
    if rows.shape[2] < 6:
        raise mismatch("yolov5", expected, arrays, names)
    classes = rows[..., 5:]
    scores = rows[..., 4] * classes.max(-1)
    return _postprocess(_centre_to_corners(rows[..., :4]), scores, classes.argmax(-1), spec)


def _boxes_scores_signature(arrays: Sequence[np.ndarray], image_hw: tuple[int, int]) -> str | None:
    """Two float outputs [N, A, 4] and [N, A, C], C ≥ 1, A ≥ 100 (an anchor set)."""
    if len(arrays) != 2 or arrays[0].ndim != 3 or arrays[1].ndim != 3:
        return None
    boxes, scores = arrays
    if boxes.shape[2] != 4 or scores.shape[:2] != boxes.shape[:2] or boxes.shape[1] < 100:
        return None
    return (
        f"boxes [N, {boxes.shape[1]}, 4] and scores [N, {boxes.shape[1]}, {scores.shape[2]}]: "
        "an SSD-style head after box decoding"
    )


@register_decoder("boxes-scores", TASK_DETECT, recognizes=_boxes_scores_signature)
def decode_boxes_scores(arrays, names, spec) -> list[Detections]:
    """boxes [N, A, 4] xyxy + scores [N, A, C] (module doc)."""
    expected = "two outputs: boxes [N, A, 4] (x1, y1, x2, y2) and scores [N, A, C]"
    if len(arrays) < 2:
        raise mismatch("boxes-scores", expected, arrays, names)
    boxes, scores = _float(arrays[0]), _float(arrays[1])
    if (
        boxes.ndim != 3
        or boxes.shape[2] != 4
        or scores.ndim != 3
        or scores.shape[:2] != boxes.shape[:2]
    ):
        raise mismatch("boxes-scores", expected, arrays, names)
    return _postprocess(boxes, scores.max(-1), scores.argmax(-1), spec)


@register_decoder("decoded", TASK_DETECT)
def decode_decoded(arrays, names, spec) -> list[Detections]:
    """[N, K, 6] or (count,) boxes, scores, labels already after NMS (module doc)."""
    expected = (
        "[N, K, 6] (x1, y1, x2, y2, score, label) or outputs boxes [N, K, 4], scores [N, K], "
        "labels [N, K] (optionally after a count [N] or [N, 1])"
    )
    count = None
    if len(arrays) >= 4 and arrays[0].ndim <= 2 and arrays[0].size == len(arrays[0]):
        count, arrays, names = arrays[0].reshape(-1).astype(np.int64), arrays[1:], names[1:]
    if len(arrays) >= 3 and arrays[0].ndim == 3 and arrays[0].shape[2] == 4:
        boxes = _float(arrays[0])
        scores, labels = _float(arrays[1]), np.asarray(arrays[2])
        if scores.shape != boxes.shape[:2] or labels.shape != boxes.shape[:2]:
            raise mismatch("decoded", expected, arrays, names)
    elif arrays and arrays[0].ndim == 3 and arrays[0].shape[2] == 6:
        table = _float(arrays[0])
        boxes, scores, labels = table[..., :4], table[..., 4], table[..., 5]
    else:
        raise mismatch("decoded", expected, arrays, names)
    result = []
    for index in range(len(boxes)):
        keep = np.asarray(labels[index]) >= 0
        if count is not None:
            keep &= np.arange(len(keep)) < count[index]
        result.append(
            Detections(
                boxes[index][keep],
                scores[index][keep],
                np.round(labels[index][keep]).astype(np.int64),
            )
        )
    return result


# -- segmentation ---------------------------------------------------------------------------


@register_decoder("logits", TASK_SEGMENT)
def decode_logits(arrays, names, spec) -> np.ndarray:
    """[N, C, H, W], C ≥ 2 → argmax over C."""
    expected = "its first output as class logits [N, C, H, W] with C >= 2"
    if not arrays or arrays[0].ndim != 4 or arrays[0].shape[1] < 2:
        raise mismatch("logits", expected, arrays, names)
    return arrays[0].argmax(axis=1).astype(np.int64)


def _single_map(decoder: str, arrays, names) -> np.ndarray:
    expected = "its first output as one map [N, 1, H, W] or [N, H, W]"
    if not arrays:
        raise mismatch(decoder, expected, arrays, names)
    array = arrays[0]
    if array.ndim == 4 and array.shape[1] == 1:
        return _float(array[:, 0])
    if array.ndim == 3:
        return _float(array)
    raise mismatch(decoder, expected, arrays, names)


def _probability_signature(arrays: Sequence[np.ndarray], image_hw: tuple[int, int]) -> str | None:
    """One float map [N, 1, H, W] or [N, H, W] at the input's H × W, every value in [0, 1] and
    not all equal (a sigmoid mask: text, saliency, matting)."""
    if len(arrays) != 1 or not np.issubdtype(arrays[0].dtype, np.floating):
        return None
    array = arrays[0]
    if array.ndim == 4 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 3 or tuple(array.shape[1:]) != tuple(image_hw) or not array.size:
        return None
    low, high = float(array.min()), float(array.max())
    if low < 0 or high > 1 or high - low < 1e-6:
        return None
    return (
        f"one map of values in [0, 1] at the input's {image_hw[0]} × {image_hw[1]}: a "
        "probability mask"
    )


@register_decoder("probability", TASK_SEGMENT, recognizes=_probability_signature)
def decode_probability(arrays, names, spec) -> np.ndarray:
    """One map of probabilities in [0, 1] → [p ≥ mask_threshold]."""
    probabilities = _single_map("probability", arrays, names)
    if probabilities.size and (probabilities.min() < -1e-6 or probabilities.max() > 1 + 1e-6):
        raise InputError(
            f"decoder 'probability' expects values in [0, 1]; output '{names[0]}' ranges "
            f"{probabilities.min():.3g}..{probabilities.max():.3g} (logits? use "
            "--decoder binary-logits)"
        )
    return (probabilities >= spec.mask_threshold).astype(np.int64)


@register_decoder("binary-logits", TASK_SEGMENT)
def decode_binary_logits(arrays, names, spec) -> np.ndarray:
    """One map of logits z → [sigmoid(z) ≥ mask_threshold]."""
    logits = _single_map("binary-logits", arrays, names)
    probabilities = 0.5 * (1.0 + np.tanh(0.5 * logits))  # sigmoid without overflow
    return (probabilities >= spec.mask_threshold).astype(np.int64)
