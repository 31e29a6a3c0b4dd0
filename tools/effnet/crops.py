"""Calibration and evaluation crops cut from different colour photos of ``skimage.data``.

Random-resized crops (area share and aspect ratio drawn per crop) plus horizontal flips with a
fixed seed, resized to 260×260 with antialiased bilinear interpolation, scaled to [0, 1] and
normalised with the ImageNet mean/std; NCHW float32. Generated at run time, never stored.
``chelsea`` and ``cat`` are the same photo, so only ``chelsea`` is used; the stereo pair of
``stereo_motorcycle`` stays on one side.

Besides ``skimage.data``, three colour photos that other packages ship can be named:
``china`` and ``flower`` (scikit-learn's ``load_sample_image``) and ``grace_hopper``
(matplotlib's sample data). None of them shows what the evaluation photos show.
``dead_leaves_<seed>`` names a synthetic image (:mod:`effnet.dead_leaves`), not a photo.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

CALIBRATION_PHOTOS = ("astronaut", "coffee", "hubble_deep_field", "immunohistochemistry", "retina")
EVALUATION_PHOTOS = ("chelsea", "rocket", "motorcycle_left", "motorcycle_right")
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
SCALE = (0.10, 1.0)
ASPECT = (3 / 4, 4 / 3)


def _stereo(index: int) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from skimage import data

        return data.stereo_motorcycle()[index]

    return load


def _sklearn_sample(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from sklearn.datasets import load_sample_image

        return load_sample_image(f"{name}.jpg")

    return load


def _grace_hopper() -> np.ndarray:
    import matplotlib.cbook

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as handle:
        from PIL import Image

        return np.asarray(Image.open(handle).convert("RGB"))


def _dead_leaves(name: str) -> np.ndarray:
    from effnet.dead_leaves import dead_leaves

    return dead_leaves(int(name.rsplit("_", 1)[1]))


def load_photo(name: str) -> np.ndarray:
    """An RGB uint8 photo (H, W, 3) from ``skimage.data`` (bundled with scikit-image, no
    network), one of the photos scikit-learn and matplotlib ship (``china``, ``flower``,
    ``grace_hopper``), or a synthetic ``dead_leaves_<seed>`` image."""
    from skimage import data

    if name.startswith("dead_leaves_"):
        return _dead_leaves(name)
    special = {
        "motorcycle_left": _stereo(0),
        "motorcycle_right": _stereo(1),
        "china": _sklearn_sample("china"),
        "flower": _sklearn_sample("flower"),
        "grace_hopper": _grace_hopper,
    }
    image = special[name]() if name in special else getattr(data, name)()
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"{name}: expected an RGB uint8 photo, got {image.shape} {image.dtype}")
    return image


def _crop_box(rng: np.random.Generator, height: int, width: int) -> tuple[int, int, int, int]:
    """A random box (top, left, h, w): area share in SCALE, log-uniform aspect in ASPECT."""
    area = height * width
    for _ in range(20):
        share = rng.uniform(*SCALE)
        aspect = math.exp(rng.uniform(math.log(ASPECT[0]), math.log(ASPECT[1])))
        w = round(math.sqrt(area * share * aspect))
        h = round(math.sqrt(area * share / aspect))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            return top, left, h, w
    side = min(height, width)
    return (height - side) // 2, (width - side) // 2, side, side


def random_crops(photos: tuple[str, ...], count: int, *, seed: int, size: int) -> np.ndarray:
    """``count`` normalised crops (count, 3, size, size), cycling over ``photos``."""
    import torch
    import torch.nn.functional as F

    rng = np.random.default_rng(seed)
    images = [load_photo(name) for name in photos]
    out = np.empty((count, 3, size, size), dtype=np.float32)
    for index in range(count):
        image = images[index % len(images)]
        top, left, h, w = _crop_box(rng, *image.shape[:2])
        patch = image[top : top + h, left : left + w]
        if rng.random() < 0.5:
            patch = patch[:, ::-1]
        tensor = torch.from_numpy(np.ascontiguousarray(patch)).permute(2, 0, 1)[None].float()
        resized = F.interpolate(
            tensor / 255.0, size=(size, size), mode="bilinear", antialias=True, align_corners=False
        )[0].numpy()
        resized = np.clip(resized, 0.0, 1.0)
        out[index] = (resized - IMAGENET_MEAN[:, None, None]) / IMAGENET_STD[:, None, None]
    return out
