"""Image preprocessing spec for ImageFolder data: resize, center crop, scale, mean/std,
RGB/BGR, NCHW/NHWC; given as flags, a mapping, or a small TOML/YAML/JSON file.

Order of operations on one image: convert to RGB (or grayscale ``L`` for 1-channel inputs) ->
``resize`` (an int N resizes the shorter side to N keeping the aspect ratio; ``[H, W]`` resizes
exactly) -> ``crop`` (center crop to N×N or ``[H, W]``) -> float32 ``pixel * scale`` ->
``(x - mean) / std`` per channel (in RGB order) -> channel order (``BGR`` reverses the
channels) -> layout (``NCHW`` or ``NHWC``).

When neither ``resize`` nor ``crop`` is given the image is resized exactly to the model
input's spatial size.

``crops`` (calibration folders): how many samples each image gives. The first is the image
preprocessed as above; every further one is a *random resized crop* of the full-resolution
image — a box of area share s ~ U(``crop_scale``) (default (0.25, 1)) and aspect ratio w/h
log-uniform in [3/4, 4/3] at a uniform position (:func:`onnxprune.calibrate.augment.random_box`),
resized to the output size (``crop``, else an exact ``resize``, else the model input's size),
flipped left–right with probability 1/2 — followed by the same scaling, normalization and
layout. ``None`` leaves the
count to the caller (:func:`onnxprune.evaluate.imagefolder.load_image_folder`); 1 turns it off.

``inputs`` (a table ``[inputs]`` in the file): values of the model's *other* inputs, the same
for every image — for exports that take more than the image, such as PaddleDetection's
``scale_factor`` and ``im_shape`` — ``name = number`` or ``name = [numbers]`` (one sample's
values, row-major; cast to the input's type). The image folder then feeds the one input not
named there.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from onnxprune.errors import InputError

#: pixel scale when neither the spec nor the model's graph says otherwise: 8-bit pixels to [0, 1]
DEFAULT_PIXEL_SCALE = 1.0 / 255.0
CONFIG_NAMES = ("preprocess.toml", "preprocess.yaml", "preprocess.yml", "preprocess.json")


@dataclass
class Preprocess:
    """How images become model inputs (see module doc). ``None`` fields are inferred from the
    model input: layout from where the channel axis (size 1 or 3) is, size from its shape."""

    resize: int | list[int] | None = None
    crop: int | list[int] | None = None
    scale: float | None = None  # None: DEFAULT_PIXEL_SCALE, or what the model's graph expects
    mean: list[float] | None = None
    std: list[float] | None = None
    channel_order: str = "RGB"
    layout: str | None = None
    crops: int | None = None
    crop_scale: list[float] | None = None
    inputs: dict[str, list[float]] | None = None

    def __post_init__(self) -> None:
        self.inputs = _constant_inputs(self.inputs)
        self.resize = _size("resize", self.resize)
        self.crop = _size("crop", self.crop)
        self.scale = None if self.scale is None else float(self.scale)
        self.mean = _floats("mean", self.mean)
        self.std = _floats("std", self.std)
        if self.std is not None and any(s == 0 for s in self.std):
            raise InputError("preprocess std must not contain 0")
        self.channel_order = str(self.channel_order).upper()
        if self.channel_order not in ("RGB", "BGR"):
            raise InputError(
                f"preprocess channel order must be RGB or BGR, got {self.channel_order!r}"
            )
        if self.layout is not None:
            self.layout = str(self.layout).upper()
            if self.layout not in ("NCHW", "NHWC"):
                raise InputError(f"preprocess layout must be NCHW or NHWC, got {self.layout!r}")
        if self.crops is not None:
            try:
                self.crops = int(self.crops)
            except (TypeError, ValueError):
                raise InputError(
                    f"preprocess crops must be an integer, got {self.crops!r}"
                ) from None
            if self.crops < 1:
                raise InputError(f"preprocess crops must be >= 1, got {self.crops}")
        self.crop_scale = _floats("crop_scale", self.crop_scale)
        if self.crop_scale is not None and (
            len(self.crop_scale) != 2 or not 0 < self.crop_scale[0] <= self.crop_scale[1] <= 1
        ):
            raise InputError(
                f"preprocess crop_scale must be [low, high] with 0 < low <= high <= 1, "
                f"got {self.crop_scale}"
            )

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], source: str = "preprocess") -> Preprocess:
        """Build from a mapping with keys named like the fields (dashes allowed; ``order`` and
        ``bgr: true`` accepted for ``channel_order``), optionally under a ``preprocess`` key."""
        if isinstance(values.get("preprocess"), Mapping):
            values = values["preprocess"]
        known = {f.name for f in fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in values.items():
            name = str(key).strip().lower().replace("-", "_")
            if name in ("order", "channels"):
                name = "channel_order"
            if name == "bgr":
                name, value = "channel_order", "BGR" if value else "RGB"
            if name not in known:
                raise InputError(f"{source}: unknown preprocess option '{key}'")
            kwargs[name] = value
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def describe(self) -> str:
        """The options that are set, numbers to 4 significant digits, for a one-line note."""

        def short(value: Any) -> str:
            if isinstance(value, float):
                return f"{value:.4g}"
            if isinstance(value, list):
                return "[" + ", ".join(short(v) for v in value) + "]"
            if isinstance(value, dict):
                return ", ".join(f"{k} = {short(v)}" for k, v in value.items())
            return str(value)

        return ", ".join(
            f"{name} {short(value)}" for name, value in self.to_dict().items() if value is not None
        )


def _size(name: str, value: Any) -> int | list[int] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [int(v) for v in value.replace("x", ",").split(",") if v.strip()]
    if isinstance(value, Sequence):
        sizes = [int(v) for v in value]
        if len(sizes) == 1:
            sizes = sizes[0]
        elif len(sizes) != 2:
            raise InputError(f"preprocess {name} must be N or [H, W], got {value!r}")
    else:
        sizes = int(value)
    if min(sizes if isinstance(sizes, list) else [sizes]) <= 0:
        raise InputError(f"preprocess {name} must be positive, got {value!r}")
    return sizes


def _constant_inputs(value: Any) -> dict[str, list[float]] | None:
    """``{input name: one sample's values}`` from the ``inputs`` table (see module doc)."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InputError(f"preprocess inputs must be a table of input name = values, got {value!r}")
    constants = {}
    for name, values in value.items():
        flat = np.asarray(values, dtype=object).reshape(-1).tolist()
        try:
            constants[str(name)] = [float(v) for v in flat]
        except (TypeError, ValueError):
            raise InputError(
                f"preprocess inputs: '{name}' must be numbers, got {values!r}"
            ) from None
        if not constants[str(name)]:
            raise InputError(f"preprocess inputs: '{name}' has no values")
    return constants


def _floats(name: str, value: Any) -> list[float] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = value.split(",")
    if isinstance(value, int | float):
        value = [value]
    try:
        return [float(v) for v in value]
    except (TypeError, ValueError):
        raise InputError(f"preprocess {name} must be numbers, got {value!r}") from None


def read_preprocess(path: str | os.PathLike) -> Preprocess:
    """Read a TOML, YAML or JSON preprocessing file."""
    source = Path(path)
    try:
        text = source.read_text()
    except OSError as error:
        raise InputError(f"cannot read preprocess config '{source}': {error.strerror}") from None
    suffix = source.suffix.lower()
    try:
        if suffix == ".toml":
            import tomllib

            values = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            import yaml

            values = yaml.safe_load(text) or {}
        elif suffix == ".json":
            values = json.loads(text)
        else:
            raise InputError(f"preprocess config '{source}': expected .toml, .yaml, .yml or .json")
    except InputError:
        raise
    except Exception as error:  # any parser error is a bad file
        raise InputError(f"preprocess config '{source}': {' '.join(str(error).split())}") from None
    if not isinstance(values, Mapping):
        raise InputError(f"preprocess config '{source}': expected a mapping")
    return Preprocess.from_mapping(values, str(source))


def resolve_preprocess(spec: Any, folder: Path | None = None) -> Preprocess:
    """A :class:`Preprocess` from ``spec`` (Preprocess, mapping, config path) or, when None,
    the folder's own ``preprocess.*`` file, else defaults."""
    if isinstance(spec, Preprocess):
        return spec
    if isinstance(spec, Mapping):
        return Preprocess.from_mapping(spec)
    if isinstance(spec, str | os.PathLike):
        return read_preprocess(spec)
    if spec is not None:
        raise InputError(f"cannot use {type(spec).__name__} as a preprocessing spec")
    if folder is not None:
        for name in CONFIG_NAMES:
            if (folder / name).is_file():
                return read_preprocess(folder / name)
    return Preprocess()


def infer_layout(shape: Sequence) -> str:
    """NCHW when axis 1 has 1 or 3 channels, NHWC when the last axis has, else NCHW."""
    if len(shape) != 4:
        raise InputError(f"image data needs a rank-4 model input, got shape {list(shape)}")
    if shape[1] in (1, 3):
        return "NCHW"
    if shape[3] in (1, 3):
        return "NHWC"
    return "NCHW"


def image_geometry(shape: Sequence, layout: str) -> tuple[int | None, int | None, int]:
    """(height, width, channels) of a rank-4 input shape in ``layout`` (None: dynamic)."""
    dims = [d if isinstance(d, int) and d > 0 else None for d in shape]
    height, width, channels = (
        (dims[2], dims[3], dims[1]) if layout == "NCHW" else (dims[1], dims[2], dims[3])
    )
    if channels is None:
        channels = 3
    if channels not in (1, 3):
        raise InputError(f"image data needs 1 or 3 channels, the model input has {channels}")
    return height, width, channels


def _pair(size: int | list[int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (size[0], size[1])


def transform(image, spec: Preprocess, size: tuple[int, int] | None, channels: int) -> np.ndarray:
    """One PIL image -> float32 array in ``spec.layout`` without the sample axis.

    ``size`` (H, W) is the model's spatial size used when ``spec`` has neither resize nor crop.
    """
    from PIL import Image

    image = image.convert("L" if channels == 1 else "RGB")
    if spec.resize is not None:
        if isinstance(spec.resize, int):
            w, h = image.size
            short = min(w, h)
            new = (max(1, round(w * spec.resize / short)), max(1, round(h * spec.resize / short)))
        else:
            new = (spec.resize[1], spec.resize[0])
        image = image.resize(new, Image.BILINEAR)
    elif spec.crop is None and size is not None:
        image = image.resize((size[1], size[0]), Image.BILINEAR)
    if spec.crop is not None:
        ch, cw = _pair(spec.crop)
        w, h = image.size
        if ch > h or cw > w:
            raise InputError(f"center crop {ch}x{cw} is larger than the image ({h}x{w})")
        top, left = (h - ch) // 2, (w - cw) // 2
        image = image.crop((left, top, left + cw, top + ch))
    return _to_array(image, spec, channels)


def crop_output_size(spec: Preprocess, size: tuple[int, int] | None) -> tuple[int, int] | None:
    """(H, W) of a random crop view: the center-crop size, else an exact resize, else the model
    input's ``size``; None when none is fixed (a shorter-side resize of a dynamic input)."""
    if spec.crop is not None:
        return _pair(spec.crop)
    if isinstance(spec.resize, list):
        return spec.resize[0], spec.resize[1]
    return size


def transform_crop(
    image,
    spec: Preprocess,
    box: tuple[int, int, int, int],
    flip: bool,
    out_size: tuple[int, int],
    channels: int,
) -> np.ndarray:
    """One random crop view (module doc, ``crops``): ``box`` (top, left, h, w) of the
    full-resolution PIL ``image`` resized to ``out_size`` (H, W), mirrored when ``flip``."""
    from PIL import Image

    mode = "L" if channels == 1 else "RGB"
    if image.mode != mode:  # callers cutting many crops convert the photo once
        image = image.convert(mode)
    top, left, h, w = box
    image = image.resize(
        (out_size[1], out_size[0]), Image.BILINEAR, box=(left, top, left + w, top + h)
    )
    if flip:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return _to_array(image, spec, channels)


def _to_array(image, spec: Preprocess, channels: int) -> np.ndarray:
    """Scale, normalize, order and lay out the pixels of a PIL image (module doc)."""
    scale = DEFAULT_PIXEL_SCALE if spec.scale is None else spec.scale
    array = np.asarray(image, dtype=np.float32) * np.float32(scale)
    if array.ndim == 2:
        array = array[:, :, None]
    if spec.mean is not None:
        array = array - _per_channel(spec.mean, channels, "mean")
    if spec.std is not None:
        array = array / _per_channel(spec.std, channels, "std")
    if spec.channel_order == "BGR" and channels == 3:
        array = array[:, :, ::-1]
    layout = spec.layout or "NCHW"
    if layout == "NCHW":
        array = array.transpose(2, 0, 1)
    return np.ascontiguousarray(array, dtype=np.float32)


def _per_channel(values: list[float], channels: int, name: str) -> np.ndarray:
    if len(values) == 1:
        values = values * channels
    if len(values) != channels:
        raise InputError(f"preprocess {name} has {len(values)} values for {channels} channel(s)")
    return np.asarray(values, dtype=np.float32)


def settle_scale(
    settings: Preprocess,
    input_name: str,
    pixel_scales: Mapping[str, tuple[float, str]] | None,
    dtype: Any = np.float32,
) -> str:
    """Fix ``settings.scale`` for model input ``input_name`` of type ``dtype``; returns a note
    saying why when the model decided, else "".

    * A ``uint8`` input takes raw 8-bit pixels: scale 1, no mean/std (a spec that sets a
      scale other than 1, a mean or a std is an InputError).
    * A float input whose spec sets no scale: the scale its graph expects
      (:func:`onnxprune.graph.input_affine.image_pixel_scales`) when the spec sets no mean or
      std either, else ``DEFAULT_PIXEL_SCALE``.
    * Other input types are an InputError."""
    dtype = np.dtype(dtype)
    if dtype == np.uint8:
        if (
            settings.scale not in (None, 1.0)
            or settings.mean is not None
            or settings.std is not None
        ):
            raise InputError(
                f"model input '{input_name}' is uint8, so it takes raw pixels: the preprocessing "
                "spec must not set scale, mean or std"
            )
        settings.scale = 1.0
        return f"model input '{input_name}' is uint8: images are fed as raw pixels 0–255"
    if not np.issubdtype(dtype, np.floating):
        raise InputError(
            f"image folder data needs a float or uint8 model input, '{input_name}' is {dtype}"
        )
    if settings.scale is not None:
        return ""
    expected = (pixel_scales or {}).get(input_name)
    if expected is None or settings.mean is not None or settings.std is not None:
        settings.scale = DEFAULT_PIXEL_SCALE
        return ""
    settings.scale, why = expected
    return why + "; set scale in the preprocessing spec to override"


def as_input_type(images: np.ndarray, dtype: Any) -> np.ndarray:
    """Preprocessed images (float32) in the model input's type: 8-bit inputs rounded and
    clipped to [0, 255] (resampling may leave fractions), floats cast."""
    dtype = np.dtype(dtype)
    if dtype == np.uint8:
        return np.clip(np.rint(images), 0, 255).astype(np.uint8)
    return images.astype(dtype, copy=False)
