"""Synthetic "dead leaves" images: occluding discs with a power-law size distribution.

Disc radii follow p(r) ∝ r⁻³ between ``RADII`` (the scale-invariant law of natural images'
occlusions), centres are uniform over the canvas and a little beyond, colours uniform in RGB;
the first disc drawn at a pixel hides the later ones. A benchmark stand-in for "more, generic
calibration images" that needs no photo. Deterministic for a seed.
"""

from __future__ import annotations

import numpy as np

RADII = (4.0, 200.0)
DISCS = 6000


def dead_leaves(seed: int, size: int = 512) -> np.ndarray:
    """An RGB uint8 image (size, size, 3)."""
    rng = np.random.default_rng(seed)
    image = np.zeros((size, size, 3), np.float32)
    filled = np.zeros((size, size), bool)
    rows, cols = np.mgrid[0:size, 0:size]
    low, high = RADII
    radius = (low**-2 - rng.random(DISCS) * (low**-2 - high**-2)) ** -0.5
    centre_x = rng.uniform(-high / 2, size + high / 2, DISCS)
    centre_y = rng.uniform(-high / 2, size + high / 2, DISCS)
    colours = rng.random((DISCS, 3))
    for i in range(DISCS):
        x0, x1 = int(max(0, centre_x[i] - radius[i])), int(min(size, centre_x[i] + radius[i] + 1))
        y0, y1 = int(max(0, centre_y[i] - radius[i])), int(min(size, centre_y[i] + radius[i] + 1))
        if x0 >= x1 or y0 >= y1:
            continue
        inside = (rows[y0:y1, x0:x1] - centre_y[i]) ** 2 + (cols[y0:y1, x0:x1] - centre_x[i]) ** 2
        visible = (inside <= radius[i] ** 2) & ~filled[y0:y1, x0:x1]
        image[y0:y1, x0:x1][visible] = colours[i]
        filled[y0:y1, x0:x1] |= visible
        if filled.all():
            break
    return (image * 255).astype(np.uint8)
