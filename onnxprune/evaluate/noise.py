"""The guard metric's noise floor: how much the metric moves when nothing was pruned.

A pruning step whose metric change is indistinguishable from noise must never be rolled back,
and a default tolerance is only meaningful relative to that noise. Two sources are measured on
the evaluation data, for the *unpruned* model:

* **input perturbation** — every float input gets Gaussian noise of standard deviation
  σ·std(x) (``sigma`` = 0.01 by default: 1 % of the input's own spread, invisible in an image),
  and the metric of the perturbed run is compared with the unperturbed baseline:
  d_p = quality loss of the perturbed outputs (0 when the model has no float input);
* **sampling** — a paired bootstrap over evaluation samples: B resamples (with replacement)
  of the sample indices, on each the loss d_b of the perturbed run against the baseline on the
  same resample; s_b = std_b(d_b) is the spread a drop measured on this data has by chance.

The floor is ``max(d_p, 0) + 2·s_b`` in the metric's own unit ("loss" is signed by the
metric's direction: baseline − value for higher-is-better metrics, value − baseline else).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

DEFAULT_SIGMA = 0.01
BOOTSTRAP_RESAMPLES = 100


@dataclass
class NoiseFloor:
    """The measured floor and its parts (see module docstring)."""

    floor: float
    perturbation_loss: float | None
    bootstrap_std: float
    sigma: float
    resamples: int
    samples: int
    perturbed_inputs: list[str]

    def to_dict(self) -> dict:
        return asdict(self)


def perturb_inputs(
    inputs: dict[str, np.ndarray], sigma: float, seed: int
) -> tuple[dict[str, np.ndarray], list[str]]:
    """Copies of ``inputs`` with N(0, (σ·std x)²) noise on float arrays and on 8-bit images
    (``uint8`` arrays of rank >= 3: the noisy pixels rounded and clipped to [0, 255]); other
    integer and boolean inputs (token ids, masks) are left as they are. Returns (arrays, names
    perturbed)."""
    rng = np.random.default_rng(seed)
    perturbed: dict[str, np.ndarray] = {}
    names: list[str] = []
    for name, array in inputs.items():
        image_8bit = array.dtype == np.uint8 and array.ndim >= 3
        if (np.issubdtype(array.dtype, np.floating) or image_8bit) and array.size:
            values = array.astype(np.float64)
            noisy = values + rng.standard_normal(array.shape) * sigma * float(np.std(values))
            if image_8bit:
                noisy = np.clip(np.rint(noisy), 0, 255)
            perturbed[name] = noisy.astype(array.dtype)
            names.append(name)
        else:
            perturbed[name] = array
    return perturbed, names


def measure_noise_floor(
    loss_on: Callable[[np.ndarray | None], float],
    samples: int,
    *,
    perturbed: bool,
    sigma: float = DEFAULT_SIGMA,
    perturbed_inputs: list[str] | None = None,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> NoiseFloor:
    """Floor from ``loss_on(indices)``: the quality loss of the perturbed run against the
    baseline on the samples ``indices`` (all samples for None). ``perturbed`` says whether any
    input could be perturbed (else the perturbation loss is unknown and only sampling counts).
    """
    rng = np.random.default_rng(seed + 11)
    full = float(loss_on(None))
    draws = [float(loss_on(rng.integers(0, samples, samples))) for _ in range(resamples)]
    spread = float(np.std(draws)) if len(draws) > 1 else 0.0
    perturbation = full if perturbed else None
    floor = max(full, 0.0) + 2.0 * spread
    return NoiseFloor(
        floor=floor,
        perturbation_loss=perturbation,
        bootstrap_std=spread,
        sigma=sigma,
        resamples=resamples,
        samples=samples,
        perturbed_inputs=list(perturbed_inputs or []),
    )
