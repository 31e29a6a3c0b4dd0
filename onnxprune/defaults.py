"""Defaults shared by ``prune`` and ``optimize`` (API and CLI): one place, one set.

``round_to`` follows the execution provider's channel block
(:func:`onnxprune.runtime.blocks.channel_block`: 16 on AVX-512 CPUs, 8 on AVX2, 8 on GPUs), so
a pruned model keeps ONNX Runtime's fast kernels; ``max_ratio`` caps the share of a group that
may go; without calibration data the criterion is ``l1``.

``OBS_DAMP`` is the ridge of every OBS Hessian (channel scores in
:mod:`onnxprune.importance.obs`, weight sparsity in :mod:`onnxprune.sparsity.obs`):
H + OBS_DAMP·mean(diag H)·I. 0.3, not SparseGPT's 0.01: the calibration images of a user are
few and need not look like the images the model will see, and on photos other than the
calibration ones 0.3 kept the most agreement for both kinds of pruning (docs/ARCHITECTURE.md,
"OBS damping").

``LSQ_RIDGE`` is the ridge of the least-squares recoveries (``lsq``, ``reconstruct``):
λ = LSQ_RIDGE·tr(G)/d pulls each refitted layer toward its pruned weights. 0.1 (was 1e-3) for
the same reason: it kept more agreement on photos other than the calibration ones at every
measured cut and left the digits models unchanged (docs/ARCHITECTURE.md, "OBS damping").

``RECONSTRUCT_MIN_SAMPLES``: with at least this many calibration samples, ``optimize``'s
default recovery is ``reconstruct`` (every linear layer refitted against the unpruned model),
with fewer it is ``lsq`` (only the readers of removed channels). ``reconstruct`` has many more
unknowns: on EfficientNet-Lite2 it lost to ``lsq`` with 64 calibration crops and beat it at
a 30 % cut with 256 and 512 crops on two draws of photos (docs/benchmarks.md, "Calibration
size with the new defaults").

``SENSITIVITY_SAMPLES`` / ``SENSITIVITY_RECOVERY``: ``optimize``'s sensitivity table (allocation
``sensitivity``) measures every group's drop on the first 32 calibration samples, each point
repaired by a bias correction first (``none`` would leave the points unrepaired; a run whose
recovery is ``none`` always measures them unrepaired). The table costs groups × ratios model
runs: on EfficientNet-Lite2, scores and table took 443 s with a 128-sample table against
138–156 s with a 32-sample one, for +2.4 / +0.8 points of top-1 agreement at 20 / 30 % MAC
cuts (one draw), so the 5-minute budget goes to the refit instead. The repair: with 512
calibration crops and evaluation on other photos, a default ``optimize`` kept 75.8 / 65.6 %
top-1 agreement at 20 / 30 % cuts with it and 69.5 / 58.6 % without (seeds 11, 12). In the
guarded first run with ``groups`` (the guard on 51 crops of 2 held-out photos) it went the
other way: the unrepaired table's first step lost 0.55 points of the guard's metric where the
repaired one lost 1.93, and that run stopped at 0.763 of the MACs unrepaired, 0.936 repaired.
The larger, two-draw measurement on other photos decides (docs/benchmarks.md,
"`optimize()` with its own defaults").

``PHOTO_CALIBRATION_SAMPLES``: a calibration image folder (``--data photos/`` of ``optimize``,
``sparsify``, ``sensitivity``) with fewer images is brought to about this many samples by random resized crops
of each photo, grouped by photo (:mod:`onnxprune.evaluate.imagefolder`). 512 is the most the
scores and refits read, and on EfficientNet-Lite2 512 crops of five photos kept 65.6 % top-1
agreement on other photos at a 30 % MAC cut where 128 kept 46.1 % (docs/benchmarks.md,
"`optimize()` with its own defaults"). ``--eval`` folders are never augmented.

``LATENCY_MIN_SECONDS``: the latency comparison of ``optimize`` and ``bench`` times interleaved
rounds until at least this many seconds have passed (and at least 50 rounds): 50 rounds of a
pair of 2 ms models left their p50 ratio anywhere in 0.88–1.26 over 8 repeats, 2 s of rounds
0.95–1.13 (docs/benchmarks.md, "Latency ratios: how many timed runs").
"""

from __future__ import annotations

MAX_RATIO = 0.8
OBS_DAMP = 0.3
LSQ_RIDGE = 0.1
RECONSTRUCT_MIN_SAMPLES = 256
SENSITIVITY_SAMPLES = 32
SENSITIVITY_RECOVERY = "bias"
DATA_FREE_CRITERION = "l1"
PHOTO_CALIBRATION_SAMPLES = 512
LATENCY_MIN_SECONDS = 2.0
#: A guarded step may remove up to this share of the whole model's measure (MACs, parameters,
#: weights) beyond what it asked for before the loop looks for a closer selection
#: (:func:`onnxprune.allocate.schedule.closer_prefix`): one coarse unit of a small model took
#: a 0.7 MAC target to 0.55 (docs/ARCHITECTURE.md, "Steps that overshoot").
FIT_TOLERANCE = 0.01


def round_to(provider: str = "cpu", value: int | None = None) -> int:
    """``value`` when given, else the channel block of ``provider``."""
    if value is not None:
        return int(value)
    from onnxprune.runtime.blocks import channel_block

    return channel_block(provider)
