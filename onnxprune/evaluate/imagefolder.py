"""Images in ImageFolder layout (``root/<class>/<image>``) -> a Dataset with class labels.

Classes are the sub-folder names in sorted order; label ``i`` is the ``i``-th class, unless
the model declares its class names and every sub-folder is one of them: then a folder's label
is its name's position there (:func:`class_labels`, :mod:`onnxprune.graph.class_names`). A folder
with images but no sub-folders gives unlabelled data, and so does a single sub-folder that is
not a declared class name: its index 0 says nothing about which of the model's classes the
images are (a user's
``photos/all/*.jpg`` would otherwise be scored as "every image is class 0"). Files of other types (and the
preprocessing config) are ignored. Images are decoded with Pillow, turned upright by their EXIF
orientation (as photo viewers show them), and preprocessed by
:mod:`onnxprune.evaluate.preprocess` for the model's single rank-4 input.

**Few photos, many calibration samples.** Scores and refits read up to 512 calibration samples,
and a user's folder often holds a few dozen photos. With ``augment_to`` (set by the callers that
calibrate, never for ``--eval``) a folder of n < ``augment_to`` images gives k = ⌈augment_to / n⌉
samples per image: the image itself, then k − 1 random resized crops of the full-resolution
photo (:mod:`onnxprune.evaluate.preprocess`, ``crops``). The preprocessing's own ``crops``
overrides k (1 turns it off). Whenever an image gives more than one sample, the dataset's
``groups`` hold the image index, so the guard's held-out split keeps each photo's crops on one
side (:meth:`~onnxprune.evaluate.data.Dataset.split`). Measured in docs/benchmarks.md
("Calibration crops from a folder of photos").
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from onnxprune.errors import InputError, input_shape_hint
from onnxprune.evaluate.normalization_probe import MAX_PHOTOS, Classify, probe_note
from onnxprune.graph.class_names import ClassNames

#: Area share and aspect ratio (w/h) of the random crop views (module doc).
CROP_SCALE = (0.25, 1.0)
CROP_ASPECT = (3 / 4, 4 / 3)

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp", ".gif"}
)


def class_labels(folders: Sequence[str], declared: ClassNames | None) -> tuple[list[int], str]:
    """(label of each class folder, a note saying how they were labelled, or "").

    When the model declares its class names (:mod:`onnxprune.graph.class_names`) and every
    folder is one of them, folder ``f`` is class ``declared.names.index(f)``. Otherwise the
    sorted folders are classes 0, 1, … (torchvision's ImageFolder order, which a model trained
    on these folders learnt); a note says so when the declaration names only some folders, or
    when the folders are numbers that sort as text ('10' before '2')."""
    folders = sorted(folders)
    if declared is not None:
        index = {name: position for position, name in enumerate(declared.names)}
        if all(folder in index for folder in folders):
            return [index[folder] for folder in folders], (
                f"class folders labelled by the model's own class names ({declared.source}: "
                f"{_listed(declared.names)}), not by their sorted order"
            )
        known = [folder for folder in folders if folder in index]
        if known:
            unknown = [folder for folder in folders if folder not in index]
            return list(range(len(folders))), (
                f"{len(known)} class folder(s) are the model's class names ({declared.source}) "
                f"and {len(unknown)} are not ({_listed(unknown)}): labelled by sorted folder "
                "order (0, 1, …), as a model trained on these folders expects; name every "
                "folder after the model's classes to label by them"
            )
    numbers = [int(folder) for folder in folders if folder.isascii() and folder.isdigit()]
    if len(numbers) == len(folders) and numbers != sorted(numbers):
        return list(range(len(folders))), (
            f"class folders are numbers and are labelled in sorted text order ({_listed(folders)}"
            " → 0, 1, …), as torchvision's ImageFolder does; if the numbers are the class "
            "indices, name them with leading zeros (002, 010) so both orders agree"
        )
    return list(range(len(folders))), ""


def _listed(names: Sequence[str], limit: int = 6) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", … ({len(names)} in all)" if len(names) > limit else "")


def list_images(
    root: Path, declared: ClassNames | None = None
) -> tuple[list[Path], list[int], list[str], str]:
    """(files, labels, class folders, labelling note) of an ImageFolder tree; labels are -1
    for a flat folder; class folders are labelled by :func:`class_labels`."""
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    files: list[Path] = []
    labels: list[int] = []
    note = ""
    if classes:
        folder_labels, note = class_labels(classes, declared)
        for name, label in zip(classes, folder_labels, strict=True):
            found = sorted(
                p
                for p in (root / name).rglob("*")
                if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
            )
            files += found
            labels += [label] * len(found)
    else:
        files = sorted(
            p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
        labels = [-1] * len(files)
    if not files:
        raise InputError(
            f"image folder '{root}' has no images ({', '.join(sorted(IMAGE_SUFFIXES))})"
        )
    return files, labels, classes, note


def the_image_input(input_specs: Sequence, given: Mapping[str, Any] | None = None) -> Any:
    """The one input spec an image folder feeds: the model's only input, or the only one whose
    values the preprocessing spec's ``inputs`` table does not give; an InputError naming every
    input (and the ways to feed them all) otherwise."""
    given = dict(given or {})
    names = [spec[0] for spec in input_specs]
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise InputError(
            f"preprocess inputs name '{unknown[0]}', which is not a model input "
            f"(inputs: {', '.join(names)})"
        )
    left = [spec for spec in input_specs if spec[0] not in given]
    if len(left) == 1:
        return left[0]
    listed = ", ".join(f"'{spec[0]}'" for spec in input_specs)
    raise InputError(
        f"image folder data feeds a model with one input, this one has {len(input_specs)} "
        f"({listed}): give the values of the others under [inputs] in the folder's "
        "preprocess.toml (e.g. scale_factor = [1.0, 1.0]), or --data an .npz with one array "
        "per input name"
    )


def constant_inputs(
    input_specs: Sequence,
    given: Mapping[str, Sequence[float]] | None,
    count: int,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
) -> dict[str, np.ndarray]:
    """The preprocessing spec's ``inputs`` as arrays of ``count`` identical samples, shaped and
    typed as each model input (one sample's values fill its per-sample shape, or one value
    fills all of it; a dynamic per-sample shape takes the values as a vector)."""
    from onnxprune.evaluate.data import expected_shape

    arrays = {}
    specs = {spec[0]: spec for spec in input_specs}
    for name, values in (given or {}).items():
        spec = specs[name]
        per_sample = list(expected_shape(spec, input_shapes)[1:])
        sample = np.asarray(values, dtype=np.float64)
        if all(isinstance(d, int) and d > 0 for d in per_sample):
            if sample.size == 1:
                sample = np.full(per_sample, sample.reshape(-1)[0])
            elif sample.size != int(np.prod(per_sample, dtype=np.int64)):
                raise InputError(
                    f"preprocess inputs: '{name}' has {sample.size} value(s), the input takes "
                    f"{per_sample} per sample"
                )
            sample = sample.reshape(per_sample)
        dtype = np.dtype(spec[1])
        if dtype.kind in "iub" and not np.array_equal(sample, np.round(sample)):
            raise InputError(
                f"preprocess inputs: '{name}' is an integer input ({dtype.name}): its values must be "
                f"whole numbers, got {sample.reshape(-1).tolist()}"
            )
        batch = np.broadcast_to(sample, (count, *sample.shape))
        arrays[name] = np.ascontiguousarray(batch).astype(dtype)
    return arrays


def load_image_folder(
    root: Path,
    input_specs: Sequence[tuple[str, np.dtype, list]],
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    preprocess: Any = None,
    *,
    augment_to: int | None = None,
    seed: int = 0,
    pixel_scales: Mapping[str, tuple[float, str]] | None = None,
    classify: Classify | None = None,
    class_names: ClassNames | None = None,
):
    """Decode and preprocess every image under ``root`` (see module doc); ``augment_to``: the
    sample count a folder of fewer images is brought to with random crops, ``seed`` theirs;
    ``pixel_scales``: what the model's graph expects of its image inputs
    (:func:`onnxprune.graph.input_affine.image_pixel_scales`), the pixel scale when the spec
    sets none; ``classify``: the model run on a batch
    (:func:`onnxprune.evaluate.normalization_probe.photo_classifier`), which probes the
    normalization when the spec sets none (:mod:`onnxprune.evaluate.normalization_probe`);
    ``class_names``: the model's declared classes, which label class folders named after them
    (:func:`class_labels`)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    from onnxprune.evaluate.data import Dataset, expected_shape
    from onnxprune.evaluate.preprocess import (
        as_input_type,
        crop_output_size,
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
    unset = (  # the spec says nothing of pixel values: the normalization probe may run
        settings.scale is None
        and settings.mean is None
        and settings.std is None
        and settings.channel_order == "RGB"
    )
    scale_note = settle_scale(settings, name, pixel_scales, dtype)
    layout = settings.layout or infer_layout(shape)
    settings.layout = layout
    height, width, channels = image_geometry(shape, layout)
    size = (height, width) if height and width else None
    if size is None and settings.resize is None and settings.crop is None:
        raise InputError(
            f"model input '{name}' has a dynamic image size: give resize/crop in the "
            f"preprocessing spec or {input_shape_hint(name)}"
        )
    files, labels, classes, labelling_note = list_images(root, class_names)
    per_image, crop_note = _views_per_image(settings, len(files), augment_to)
    out_size = crop_output_size(settings, size)
    if per_image > 1 and out_size is None:
        per_image = 1
        crop_note = (
            "no random crops: the output size is not fixed (give crop or an exact [H, W] "
            "resize in the preprocessing spec)"
        )
    rng = np.random.default_rng(seed)
    views: list[list[np.ndarray]] = []
    for path in files:
        try:
            with Image.open(path) as opened:
                image = ImageOps.exif_transpose(opened)  # a phone photo's stored rotation
                views.append([transform(image, settings, size, channels)])
                if per_image > 1:
                    views[-1] += _crop_views(
                        image, settings, out_size, channels, per_image - 1, rng
                    )
        except (UnidentifiedImageError, OSError) as error:
            raise InputError(f"cannot read image '{path}': {error}") from None
    # Round-robin order (every image's j-th view before any (j+1)-th): readers that take the
    # first samples (the sensitivity table, max_samples) see every photo, not the first one.
    order = [(image, view) for view in range(per_image) for image in range(len(files))]
    arrays = [views[image][view] for image, view in order]
    sample_labels = [labels[image] for image, _ in order]
    groups = [image for image, _ in order]
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise InputError(
            f"images in '{root}' have different sizes after preprocessing ({sorted(shapes)}): "
            "give a crop size"
        )
    inputs = {name: as_input_type(np.stack(arrays), dtype)}
    inputs.update(constant_inputs(input_specs, settings.inputs, len(arrays), input_shapes))
    by_name = class_names is not None and all(c in class_names.names for c in classes)
    labelled = len(classes) > 1 or (len(classes) == 1 and by_name)
    dataset = Dataset(
        inputs,
        np.asarray(sample_labels, dtype=np.int64) if labelled else None,
        str(root),
        groups=np.asarray(groups, dtype=np.int64) if per_image > 1 else None,
    )
    if len(classes) == 1 and not labelled:
        labelling = (
            f", one class folder '{classes[0]}': read as unlabelled images (labels need two or "
            "more class folders, sorted in the model's class order)"
        )
    else:
        plural = "" if len(classes) == 1 else "es"
        labelling = (
            f", {len(classes)} class{plural}" if classes else ", no class folders (no labels)"
        )
    dataset.notes.append(
        f"image folder '{root}': {len(files)} images{labelling}, preprocessing: {settings.describe()}"
    )
    if labelled and labelling_note:
        dataset.notes.append(f"image folder '{root}': {labelling_note}")
    if scale_note:
        dataset.notes.append(f"image folder '{root}': {scale_note}")
    elif settings.mean is None and settings.std is None:
        dataset.notes.append(
            f"image folder '{root}': no mean/std in the preprocessing spec, so pixels are fed "
            f"scaled by {settings.scale:.4g} and not normalized; if the model expects a "
            "normalization (most ImageNet classifiers do), give its mean and std in "
            "preprocess.toml"
        )
        if unset:  # (a uint8 input took the scale_note branch above)
            photos = inputs[name][: min(len(files), MAX_PHOTOS)]  # the un-cropped views
            probe = probe_note(
                classify, photos, settings.scale, settings.channel_order, layout, channels
            )
            if probe:
                dataset.notes.append(f"image folder '{root}': {probe}")
    if crop_note:
        dataset.notes.append(f"image folder '{root}': {crop_note}")
    return dataset


def _views_per_image(settings, count: int, augment_to: int | None) -> tuple[int, str]:
    """(samples per image, a note saying why) from the spec's ``crops`` or ``augment_to``."""
    if settings.crops is not None:
        if settings.crops == 1:
            return 1, ""
        return settings.crops, (
            f"{settings.crops} samples per image (the image and {settings.crops - 1} random "
            "resized crops, preprocessing 'crops'), grouped by image (optimize's guard holds "
            "out whole images)"
        )
    if augment_to is None or count >= augment_to:
        return 1, ""
    per_image = math.ceil(augment_to / count)
    return per_image, (
        f"{count} images < {augment_to}: {per_image} samples per image (the image and "
        f"{per_image - 1} random resized crops, {count * per_image} in all) for calibration; "
        "grouped by image (optimize's guard holds out whole images); 'crops = 1' in the "
        "preprocessing spec turns this off"
    )


def _crop_views(image, settings, out_size, channels: int, count: int, rng) -> list[np.ndarray]:
    """``count`` random resized crops (with random flips) of one full-resolution image."""
    from onnxprune.calibrate.augment import random_box
    from onnxprune.evaluate.preprocess import transform_crop

    image = image.convert("L" if channels == 1 else "RGB")  # once, not per crop
    width, height = image.size
    scale = tuple(settings.crop_scale) if settings.crop_scale else CROP_SCALE
    views = []
    for _ in range(count):
        box = random_box(rng, height, width, scale, CROP_ASPECT)
        flip = bool(rng.random() < 0.5)
        views.append(transform_crop(image, settings, box, flip, out_size, channels))
    return views
