"""Images in ImageFolder layout (``root/<class>/<image>``) -> a Dataset with class labels.

Classes are the sub-folder names in sorted order; label ``i`` is the ``i``-th class. A folder
with images but no sub-folders gives unlabelled data, and so does a single sub-folder: its
index 0 says nothing about which of the model's classes the images are (a user's
``photos/all/*.jpg`` would otherwise be scored as "every image is class 0"). Files of other types (and the
preprocessing config) are ignored. Images are decoded with Pillow and preprocessed by
:mod:`onnxprune.evaluate.preprocess` for the model's single rank-4 input.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from onnxprune.errors import InputError, input_shape_hint

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp", ".gif"}
)


def list_images(root: Path) -> tuple[list[Path], list[int], list[str]]:
    """(files, labels, class names) of an ImageFolder tree; labels are -1 for a flat folder."""
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    files: list[Path] = []
    labels: list[int] = []
    if classes:
        for index, name in enumerate(classes):
            found = sorted(
                p
                for p in (root / name).rglob("*")
                if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
            )
            files += found
            labels += [index] * len(found)
    else:
        files = sorted(
            p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
        labels = [-1] * len(files)
    if not files:
        raise InputError(
            f"image folder '{root}' has no images ({', '.join(sorted(IMAGE_SUFFIXES))})"
        )
    return files, labels, classes


def load_image_folder(
    root: Path,
    input_specs: Sequence[tuple[str, np.dtype, list]],
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    preprocess: Any = None,
):
    """Decode and preprocess every image under ``root`` (see module doc)."""
    from PIL import Image, UnidentifiedImageError

    from onnxprune.evaluate.data import Dataset, expected_shape
    from onnxprune.evaluate.preprocess import (
        image_geometry,
        infer_layout,
        resolve_preprocess,
        transform,
    )

    if len(input_specs) != 1:
        raise InputError(
            f"image folder data needs a model with one input, this one has {len(input_specs)}"
        )
    spec = input_specs[0]
    name, dtype, _ = spec
    if not np.issubdtype(np.dtype(dtype), np.floating):
        raise InputError(f"image folder data needs a float model input, '{name}' is {dtype}")
    shape = expected_shape(spec, input_shapes)
    settings = resolve_preprocess(preprocess, root)
    layout = settings.layout or infer_layout(shape)
    settings.layout = layout
    height, width, channels = image_geometry(shape, layout)
    size = (height, width) if height and width else None
    if size is None and settings.resize is None and settings.crop is None:
        raise InputError(
            f"model input '{name}' has a dynamic image size: give resize/crop in the "
            f"preprocessing spec or {input_shape_hint(name)}"
        )
    files, labels, classes = list_images(root)
    arrays = []
    for path in files:
        try:
            with Image.open(path) as image:
                arrays.append(transform(image, settings, size, channels))
        except (UnidentifiedImageError, OSError) as error:
            raise InputError(f"cannot read image '{path}': {error}") from None
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise InputError(
            f"images in '{root}' have different sizes after preprocessing ({sorted(shapes)}): "
            "give a crop size"
        )
    inputs = {name: np.stack(arrays).astype(dtype, copy=False)}
    labelled = len(classes) > 1
    dataset = Dataset(inputs, np.asarray(labels, dtype=np.int64) if labelled else None, str(root))
    if len(classes) == 1:
        labelling = (
            f", one class folder '{classes[0]}': read as unlabelled images (labels need two or "
            "more class folders, sorted in the model's class order)"
        )
    else:
        labelling = f", {len(classes)} classes" if classes else ", no class folders (no labels)"
    dataset.notes.append(
        f"image folder '{root}': {len(files)} images{labelling}, preprocessing {settings.to_dict()}"
    )
    return dataset
