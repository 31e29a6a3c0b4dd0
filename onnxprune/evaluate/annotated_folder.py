"""An image folder with detection or segmentation ground truth → a Dataset with targets.

Layout: images directly in ``root`` (not in class sub-folders) plus

* a COCO-style JSON (``annotations.json``, ``coco.json`` or ``instances*.json``) with
  ``images`` (``id``, ``file_name``), ``annotations`` (``image_id``, ``bbox`` = [x, y, w, h]
  in original pixels, ``category_id``, optional ``iscrowd``: crowd boxes are skipped) and
  ``categories`` (``id``): a box's label is the position of its ``category_id`` among the
  sorted category ids (COCO's 1..90 ids become 0..79, the order detectors are trained with);
* and/or a ``masks/`` folder with one PNG per image (same file stem), pixel value = class
  (0 background, 255 ignored).

Images get the same preprocessing as an ImageFolder (:mod:`onnxprune.evaluate.preprocess`),
and the targets follow the geometry: a box (x1, y1, x2, y2) becomes
(x1·sx − left, y1·sy − top, x2·sx − left, y2·sy − top), sx, sy the resize factors and
(left, top) the centre-crop offset, then is clipped to the crop (a box left with no area is
dropped); masks are resized with nearest neighbour and cropped the same way. Images listed in
the JSON but missing on disk, or without a mask file, are InputErrors.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from onnxprune.errors import InputError

ANNOTATION_NAMES = ("annotations.json", "coco.json")
MASK_FOLDER = "masks"


def find_annotations(root: Path) -> Path | None:
    """The COCO JSON of ``root`` (see module doc), or None."""
    for name in ANNOTATION_NAMES:
        if (root / name).is_file():
            return root / name
    found = sorted(root.glob("instances*.json"))
    return found[0] if found else None


def is_annotated_folder(root: Path) -> bool:
    """Images at the top level and a COCO JSON or a ``masks/`` folder."""
    from onnxprune.evaluate.imagefolder import IMAGE_SUFFIXES

    has_images = any(p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES for p in root.iterdir())
    return has_images and (find_annotations(root) is not None or (root / MASK_FOLDER).is_dir())


def geometry(
    original: tuple[int, int], settings: Any, size: tuple[int, int] | None
) -> tuple[float, float, int, int, int, int]:
    """(sx, sy, left, top, width, height) of the preprocessing of an image of ``original``
    (width, height), mirroring :func:`onnxprune.evaluate.preprocess.transform`."""
    width, height = original
    new = (width, height)
    if settings.resize is not None:
        if isinstance(settings.resize, int):
            short = min(width, height)
            new = (
                max(1, round(width * settings.resize / short)),
                max(1, round(height * settings.resize / short)),
            )
        else:
            new = (settings.resize[1], settings.resize[0])
    elif settings.crop is None and size is not None:
        new = (size[1], size[0])
    left = top = 0
    out_w, out_h = new
    if settings.crop is not None:
        crop = settings.crop
        ch, cw = (crop, crop) if isinstance(crop, int) else (crop[0], crop[1])
        top, left = (new[1] - ch) // 2, (new[0] - cw) // 2
        out_w, out_h = cw, ch
    return new[0] / width, new[1] / height, left, top, out_w, out_h


def _load_coco(path: Path) -> tuple[dict[str, list], dict[int, int]]:
    """{file name: [(x1, y1, x2, y2, label), ...]} in original pixels, {category id: label}."""
    try:
        document = json.loads(path.read_text())
        images = {int(i["id"]): str(i["file_name"]) for i in document["images"]}
        categories = sorted(int(c["id"]) for c in document.get("categories", []))
        annotations = document["annotations"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise InputError(f"cannot read COCO annotations '{path}': {error!r}") from None
    if not categories:
        categories = sorted({int(a["category_id"]) for a in annotations})
    label_of = {category: index for index, category in enumerate(categories)}
    boxes: dict[str, list] = {name: [] for name in images.values()}
    for position, annotation in enumerate(annotations):
        try:
            name = images[int(annotation["image_id"])]
            x, y, w, h = (float(v) for v in annotation["bbox"])
            label = label_of[int(annotation["category_id"])]
        except (KeyError, ValueError, TypeError):
            raise InputError(
                f"COCO annotations '{path}': annotation {position} has no valid image_id, "
                "bbox [x, y, w, h] or known category_id"
            ) from None
        if annotation.get("iscrowd"):
            continue
        boxes[name].append((x, y, x + w, y + h, label))
    return boxes, label_of


def _transform_boxes(rows: list, geo: tuple) -> list:
    sx, sy, left, top, width, height = geo
    result = []
    for x1, y1, x2, y2, label in rows:
        box = np.array([x1 * sx - left, y1 * sy - top, x2 * sx - left, y2 * sy - top])
        box = np.clip(box, 0, [width, height, width, height])
        if box[2] > box[0] and box[3] > box[1]:
            result.append((*box.tolist(), label))
    return result


def _transform_mask(mask_path: Path, geo: tuple, original: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    sx, sy, left, top, width, height = geo
    try:
        with Image.open(mask_path) as mask:
            if mask.size != original:
                raise InputError(
                    f"mask '{mask_path}' is {mask.size[0]}x{mask.size[1]} but its image is "
                    f"{original[0]}x{original[1]}"
                )
            resized = mask.resize((round(original[0] * sx), round(original[1] * sy)), Image.NEAREST)
            array = np.asarray(resized)
    except OSError as error:
        raise InputError(f"cannot read mask '{mask_path}': {error}") from None
    if array.ndim != 2:
        raise InputError(f"mask '{mask_path}' must be a single-channel (L or P) PNG")
    return array[top : top + height, left : left + width].astype(np.int64)


def load_annotated_folder(
    root: Path,
    input_specs: Sequence[tuple[str, np.dtype, list]],
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    preprocess: Any = None,
    pixel_scales: Mapping[str, tuple[float, str]] | None = None,
):
    """Images of ``root`` with ``boxes``/``box_labels`` and/or ``masks`` targets;
    ``pixel_scales`` as in :func:`~onnxprune.evaluate.imagefolder.load_image_folder`."""
    from PIL import Image, UnidentifiedImageError

    from onnxprune.evaluate.data import Dataset, expected_shape
    from onnxprune.evaluate.imagefolder import IMAGE_SUFFIXES, constant_inputs, the_image_input
    from onnxprune.evaluate.preprocess import (
        as_input_type,
        image_geometry,
        infer_layout,
        resolve_preprocess,
        settle_scale,
        transform,
    )

    settings = resolve_preprocess(preprocess, root)
    spec = the_image_input(input_specs, settings.inputs)
    name, dtype, _ = spec
    shape = expected_shape(spec, input_shapes)
    scale_note = settle_scale(settings, name, pixel_scales, dtype)
    settings.layout = settings.layout or infer_layout(shape)
    height, width, channels = image_geometry(shape, settings.layout)
    size = (height, width) if height and width else None
    annotations = find_annotations(root)
    coco = _load_coco(annotations)[0] if annotations is not None else None
    mask_dir = root / MASK_FOLDER if (root / MASK_FOLDER).is_dir() else None
    files = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if coco is not None:
        missing = sorted(set(coco) - {p.name for p in files})
        if missing:
            raise InputError(f"COCO annotations '{annotations}' list missing image '{missing[0]}'")
        files = [p for p in files if p.name in coco]
    arrays, boxes, masks = [], [], []
    for path in files:
        try:
            with Image.open(path) as image:
                original = image.size
                arrays.append(transform(image, settings, size, channels))
        except (UnidentifiedImageError, OSError) as error:
            raise InputError(f"cannot read image '{path}': {error}") from None
        geo = geometry(original, settings, size)
        if coco is not None:
            boxes.append(_transform_boxes(coco[path.name], geo))
        if mask_dir is not None:
            mask_path = mask_dir / (path.stem + ".png")
            if not mask_path.is_file():
                raise InputError(f"image '{path.name}' has no mask '{mask_path}'")
            masks.append(_transform_mask(mask_path, geo, original))
    if not arrays:
        raise InputError(f"image folder '{root}' has no annotated images")
    targets: dict[str, np.ndarray] = {}
    if coco is not None:
        most = max(1, max(len(b) for b in boxes))
        box_array = np.zeros((len(boxes), most, 4), dtype=np.float32)
        label_array = np.full((len(boxes), most), -1, dtype=np.int64)
        for index, rows in enumerate(boxes):
            for row, (*box, label) in enumerate(rows):
                box_array[index, row] = box
                label_array[index, row] = label
        targets.update(boxes=box_array, box_labels=label_array)
    if mask_dir is not None:
        targets["masks"] = np.stack(masks)
    inputs = {name: as_input_type(np.stack(arrays), dtype)}
    inputs.update(constant_inputs(input_specs, settings.inputs, len(arrays), input_shapes))
    dataset = Dataset(inputs, None, str(root), [], targets)
    dataset.notes.append(
        f"annotated image folder '{root}': {len(arrays)} images, targets "
        f"{', '.join(targets)}, preprocessing: {settings.describe()}"
    )
    if scale_note:
        dataset.notes.append(f"annotated image folder '{root}': {scale_note}")
    return dataset
