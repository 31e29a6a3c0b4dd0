"""Ground truth for detection and segmentation, kept beside the model inputs of a Dataset.

Keys (``.npz`` arrays or mapping entries, first axis = samples, like every data array):

* ``boxes`` ``[N, B, 4]`` — x1, y1, x2, y2 in input pixels (after preprocessing), B = the most
  boxes of any image;
* ``box_labels`` ``[N, B]`` — integer class of each box, ``-1`` for padding rows;
* ``masks`` ``[N, H, W]`` — integer class per pixel at the input's height and width
  (0 = background; negative or 255 = ignored).

:func:`check_targets` is called when data is conformed to the model: boxes must be finite,
have x1 < x2 and y1 < y2 and lie inside the image (0 ≤ x ≤ W, 0 ≤ y ≤ H, with
``BOX_TOLERANCE`` pixels of slack for rounding); masks must be integers of the input's H × W.
Anything else is a one-line :class:`~onnxprune.errors.InputError` naming the sample.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from onnxprune.errors import InputError
from onnxprune.evaluate.detection import Detections

TARGET_KEYS = ("boxes", "box_labels", "masks")
BOX_TOLERANCE = 0.5
CHANNEL_SIZES = (1, 3, 4)


def image_size(inputs: Mapping[str, np.ndarray]) -> tuple[int, int] | None:
    """(H, W) of the image input: the first rank-4 input, NCHW when axis 1 has 1, 3 or 4
    entries, else NHWC when axis 3 has; None when no input looks like an image."""
    for array in inputs.values():
        shape = np.shape(array)
        if len(shape) != 4:
            continue
        if shape[1] in CHANNEL_SIZES:
            return int(shape[2]), int(shape[3])
        if shape[3] in CHANNEL_SIZES:
            return int(shape[1]), int(shape[2])
    return None


def check_targets(
    targets: Mapping[str, np.ndarray],
    inputs: Mapping[str, np.ndarray],
    input_specs: Sequence | None = None,
) -> None:
    """Raise InputError for targets that do not fit the images (module doc)."""
    del input_specs  # the conformed input arrays carry the shapes
    size = image_size(inputs)
    if "boxes" in targets or "box_labels" in targets:
        _check_boxes(targets, size)
    if "masks" in targets:
        _check_masks(np.asarray(targets["masks"]), size)


def _check_boxes(targets: Mapping[str, np.ndarray], size: tuple[int, int] | None) -> None:
    if "boxes" not in targets or "box_labels" not in targets:
        raise InputError("detection data needs both 'boxes' [N, B, 4] and 'box_labels' [N, B]")
    boxes, labels = np.asarray(targets["boxes"]), np.asarray(targets["box_labels"])
    if boxes.ndim != 3 or boxes.shape[2] != 4:
        raise InputError(f"data 'boxes' has shape {boxes.shape}; expected [N, B, 4] x1, y1, x2, y2")
    if labels.shape != boxes.shape[:2] or not np.issubdtype(labels.dtype, np.integer):
        raise InputError(
            f"data 'box_labels' has shape {labels.shape} ({labels.dtype}); expected integer "
            f"[N, B] = {list(boxes.shape[:2])} with -1 for padding"
        )
    real = labels >= 0
    values = boxes.astype(np.float64)
    bad = real & ~np.isfinite(values).all(axis=2)
    bad |= real & ((values[..., 2] <= values[..., 0]) | (values[..., 3] <= values[..., 1]))
    if bad.any():
        sample, row = (int(v) for v in np.argwhere(bad)[0])
        raise InputError(
            f"data 'boxes': sample {sample} box {row} {values[sample, row].tolist()} is not "
            "x1 < x2, y1 < y2 (boxes are x1, y1, x2, y2 in input pixels)"
        )
    if size is None:
        return
    height, width = size
    low = values[..., :2].min(axis=2) < -BOX_TOLERANCE
    high = (values[..., 2] > width + BOX_TOLERANCE) | (values[..., 3] > height + BOX_TOLERANCE)
    outside = real & (low | high)
    if outside.any():
        sample, row = (int(v) for v in np.argwhere(outside)[0])
        raise InputError(
            f"data 'boxes': sample {sample} box {row} {values[sample, row].tolist()} lies "
            f"outside the {width}x{height} input image (boxes are in input pixels after "
            "preprocessing)"
        )


def _check_masks(masks: np.ndarray, size: tuple[int, int] | None) -> None:
    if masks.ndim != 3 or not np.issubdtype(masks.dtype, np.integer):
        raise InputError(
            f"data 'masks' has shape {masks.shape} ({masks.dtype}); expected integer [N, H, W]"
        )
    if size is not None and tuple(masks.shape[1:]) != tuple(size):
        raise InputError(
            f"data 'masks' are {masks.shape[2]}x{masks.shape[1]} but the input images are "
            f"{size[1]}x{size[0]}; masks must have the input's height and width"
        )


def truth_detections(targets: Mapping[str, np.ndarray]) -> list[Detections]:
    """One :class:`Detections` per sample from ``boxes`` / ``box_labels`` (padding dropped)."""
    if "boxes" not in targets or "box_labels" not in targets:
        raise InputError(
            "this metric needs ground-truth boxes ('boxes' and 'box_labels' in the data); "
            "without them use its *_vs_original form"
        )
    boxes, labels = np.asarray(targets["boxes"]), np.asarray(targets["box_labels"])
    return [
        Detections(b[keep], np.ones(int(keep.sum())), l_[keep])
        for b, l_, keep in ((b, l_, l_ >= 0) for b, l_ in zip(boxes, labels, strict=True))
    ]


def truth_masks(targets: Mapping[str, np.ndarray]) -> np.ndarray:
    """The ``masks`` array, else rank-3 integer ``labels`` (segmentation labels)."""
    if "masks" in targets:
        return np.asarray(targets["masks"])
    labels = targets.get("labels")
    if labels is not None and np.ndim(labels) == 3:
        return np.asarray(labels)
    raise InputError(
        "this metric needs ground-truth masks ('masks' [N, H, W] in the data); without them "
        "use its *_vs_original form"
    )
