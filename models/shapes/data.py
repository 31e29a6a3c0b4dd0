"""Seeded synthetic-shapes images with boxes and masks (numpy only).

Each image is ``SIZE`` x ``SIZE`` RGB on a textured background (a smooth random colour field
plus faint stripes) with 1 to ``MAX_OBJECTS`` filled shapes of ``CLASS_NAMES`` (rectangle,
ellipse, triangle), each in a colour drawn from ``PALETTE``. Shapes do not overlap (a
placement whose box, grown by ``GAP`` pixels, meets an earlier one is redrawn), so every box
is the tight box of its shape's visible pixels.

Targets: ``boxes`` [N, MAX_OBJECTS, 4] xyxy in pixels (x1, y1 inclusive, x2, y2 exclusive),
``box_labels`` [N, MAX_OBJECTS] with classes 0..2 and -1 padding, ``masks`` [N, SIZE, SIZE]
with 0 background and class + 1 on each shape's pixels. Images are float32 in [0, 1], NCHW.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SIZE = 64
MAX_OBJECTS = 3
MIN_SIDE = 12
MAX_SIDE = 32
GAP = 2
CLASS_NAMES = ("rectangle", "ellipse", "triangle")
PALETTE = np.array(
    [
        (230, 40, 40),
        (40, 200, 60),
        (50, 80, 230),
        (240, 210, 40),
        (220, 60, 220),
        (40, 210, 220),
        (250, 140, 30),
        (250, 250, 250),
    ],
    dtype=np.float32,
)


@dataclass
class ShapesSplit:
    """Images [N, 3, SIZE, SIZE] float32 in [0, 1] and their targets (see module doc)."""

    images: np.ndarray
    boxes: np.ndarray
    box_labels: np.ndarray
    masks: np.ndarray

    def __len__(self) -> int:
        return len(self.images)

    def arrays(self, input_name: str) -> dict[str, np.ndarray]:
        """The npz layout onnxprune reads: the images under ``input_name`` plus the targets."""
        return {
            input_name: self.images,
            "boxes": self.boxes,
            "box_labels": self.box_labels,
            "masks": self.masks,
        }


def background(rng: np.random.Generator) -> np.ndarray:
    """A [SIZE, SIZE, 3] textured background in [0, 255]: a bilinearly upsampled 4x4 random
    colour field (muted) plus stripes of random angle and period, amplitude 20."""
    coarse = rng.uniform(40, 170, size=(4, 4, 3)).astype(np.float32)
    position = np.linspace(0, 3, SIZE, dtype=np.float32)
    low = np.floor(position).astype(int).clip(0, 2)
    frac = position - low
    rows = coarse[low] * (1 - frac)[:, None, None] + coarse[low + 1] * frac[:, None, None]
    field = rows[:, low] * (1 - frac)[None, :, None] + rows[:, low + 1] * frac[None, :, None]
    angle = rng.uniform(0, np.pi)
    period = rng.uniform(4, 12)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    stripes = 20.0 * np.sin(2 * np.pi * (xx * np.cos(angle) + yy * np.sin(angle)) / period)
    noise = rng.normal(0, 6, size=(SIZE, SIZE, 3)).astype(np.float32)
    return np.clip(field + stripes[..., None] + noise, 0, 255)


def shape_mask(kind: int, x0: int, y0: int, w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    """Boolean [SIZE, SIZE] mask of one shape inside the box (x0, y0, w, h): a filled
    rectangle, the inscribed ellipse, or a triangle with one vertex on the top edge and two on
    the bottom edge."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    px, py = xx + 0.5, yy + 0.5
    if kind == 0:
        return (px >= x0) & (px < x0 + w) & (py >= y0) & (py < y0 + h)
    if kind == 1:
        cx, cy = x0 + w / 2, y0 + h / 2
        return ((px - cx) / (w / 2)) ** 2 + ((py - cy) / (h / 2)) ** 2 <= 1.0
    apex = (x0 + rng.uniform(0.2, 0.8) * w, y0)
    left, right = (x0, y0 + h), (x0 + w, y0 + h)
    inside = np.ones((SIZE, SIZE), dtype=bool)
    corners = (apex, right, left)
    for (ax, ay), (bx, by) in zip(corners, corners[1:] + corners[:1], strict=True):
        inside &= (bx - ax) * (py - ay) - (by - ay) * (px - ax) >= 0
    return inside


def make_image(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(image [SIZE, SIZE, 3] in [0, 255], boxes [k, 4], labels [k], mask [SIZE, SIZE])."""
    image = background(rng)
    mask = np.zeros((SIZE, SIZE), dtype=np.int64)
    boxes: list[list[int]] = []
    labels: list[int] = []
    wanted = int(rng.integers(1, MAX_OBJECTS + 1))
    for _ in range(50):
        if len(boxes) == wanted:
            break
        w, h = (int(v) for v in rng.integers(MIN_SIDE, MAX_SIDE + 1, size=2))
        x0 = int(rng.integers(0, SIZE - w + 1))
        y0 = int(rng.integers(0, SIZE - h + 1))
        if any(
            x0 < b[2] + GAP and b[0] < x0 + w + GAP and y0 < b[3] + GAP and b[1] < y0 + h + GAP
            for b in boxes
        ):
            continue
        kind = int(rng.integers(0, len(CLASS_NAMES)))
        shape = shape_mask(kind, x0, y0, w, h, rng)
        ys, xs = np.nonzero(shape)
        colour = PALETTE[rng.integers(0, len(PALETTE))] + rng.normal(0, 8, size=3)
        image[shape] = np.clip(colour, 0, 255)
        mask[shape] = kind + 1
        boxes.append([int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1])
        labels.append(kind)
    return image, np.array(boxes, dtype=np.float32), np.array(labels, dtype=np.int64), mask


def generate(count: int, seed: int) -> ShapesSplit:
    """``count`` images from ``np.random.default_rng(seed)`` (deterministic)."""
    rng = np.random.default_rng(seed)
    images = np.zeros((count, 3, SIZE, SIZE), dtype=np.float32)
    boxes = np.zeros((count, MAX_OBJECTS, 4), dtype=np.float32)
    box_labels = np.full((count, MAX_OBJECTS), -1, dtype=np.int64)
    masks = np.zeros((count, SIZE, SIZE), dtype=np.int64)
    for index in range(count):
        image, image_boxes, image_labels, mask = make_image(rng)
        images[index] = np.round(image).transpose(2, 0, 1) / 255.0
        boxes[index, : len(image_boxes)] = image_boxes
        box_labels[index, : len(image_labels)] = image_labels
        masks[index] = mask
    return ShapesSplit(images, boxes, box_labels, masks)
