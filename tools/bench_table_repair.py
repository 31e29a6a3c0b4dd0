"""The guarded first run with ``groups`` under a chosen sensitivity table (issue 12 follow-up).

EfficientNet-Lite2 with the 128 crops and ``groups`` of ``tools/bench_first_run.py`` (the
guard holds out 2 whole photos), ``optimize(model, "macs=0.5", data=crops_groups.npz,
measure_latency=False)`` with every other option default, except the table settings patched
into :mod:`onnxprune.defaults` (``--samples``, ``--repair``) and, with ``--estimated-steps``,
steps sized on the units' MAC estimates instead of counted MACs. Prints the status, the MACs
kept, the guard metric, agreement / top-5 with the original on 256 crops of other photos, the
wall time and every step (step, kind, status, MACs kept, metric).

    python tools/bench_table_repair.py --samples 32 --repair bias
    python tools/bench_table_repair.py --samples 128 --repair none
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from effnet.crops import CALIBRATION_PHOTOS, EVALUATION_PHOTOS, random_crops  # noqa: E402
from effnet.measure import logits, top1_agreement, top5_containment  # noqa: E402
from effnet.model import RESOLUTION, export, load_pretrained  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=32, help="table samples")
    parser.add_argument("--repair", default="bias", help="recovery of each table point")
    parser.add_argument("--estimated-steps", action="store_true")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    import onnx

    import onnxprune.pipeline.scheme as scheme
    from onnxprune import defaults, optimize

    defaults.SENSITIVITY_SAMPLES = args.samples
    defaults.SENSITIVITY_RECOVERY = args.repair
    if args.estimated_steps:
        scheme._counted_removal = lambda *_, **__: None
    with tempfile.TemporaryDirectory(prefix="onnxprune-table-") as name:
        work = Path(name)
        model = export(load_pretrained(), work / "lite2.onnx")
        crops = random_crops(CALIBRATION_PHOTOS, 128, seed=1, size=RESOLUTION)
        groups = np.array(
            [CALIBRATION_PHOTOS[i % len(CALIBRATION_PHOTOS)] for i in range(len(crops))]
        )
        np.savez(work / "crops_groups.npz", input=crops, groups=groups)
        evaluation = random_crops(EVALUATION_PHOTOS, 256, seed=2, size=RESOLUTION)
        reference = logits(onnx.load(str(model)), evaluation)
        started = time.perf_counter()
        result = optimize(
            str(model), "macs=0.5", data=str(work / "crops_groups.npz"), measure_latency=False
        )
        seconds = time.perf_counter() - started
        report = result.report
        pruned = logits(result.model, evaluation)
        print(
            f"table {args.samples} samples, repair {args.repair}, steps "
            f"{'estimated' if args.estimated_steps else 'counted'}: {report.status}, "
            f"MACs kept {report.macs_after / report.macs_before:.3f}, guard metric "
            f"{report.metric_before:.2f} -> {report.metric_after:.2f}, agreement / top-5 on other "
            f"photos {top1_agreement(pruned, reference):.1%} / "
            f"{top5_containment(pruned, reference):.1%}, {seconds:.0f} s"
        )
        for step in report.steps:
            print(
                f"  step {step.step} {step.kind}: {step.status}, MACs kept "
                f"{step.macs / report.macs_before:.3f}, metric {step.metric:.2f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
