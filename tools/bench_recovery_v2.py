"""Recovery v2 ablation: EfficientNet-Lite2 (protocol of bench_effnet_lite2.py) + digits.

The channels removed at each MAC cut are chosen once (OBS criterion, per-group sensitivity
table, allocation by the table), then every recovery configuration repairs the same pruned
model, so the rows differ only in recovery. Allocation rows re-measure the table with a
recovered candidate per point (``--sens-recovery``) and allocate by the knapsack DP.

    python tools/bench_recovery_v2.py                       # full table, writes docs/benchmarks.md
    python tools/bench_recovery_v2.py --cuts 0.2 --calib 64 --eval 128 --no-write --cache /tmp/rv2
"""

from __future__ import annotations

import argparse
import os
import pickle
import shlex
import sys
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from _markdown import markdown_table, write_section  # noqa: E402

SECTION = "recovery-v2"
CALIBRATION_SEED = 1
EVALUATION_SEED = 2
TARGETS = {0.2: 0.75, 0.3: 0.60}
CV_GRID = (1e-3, 1e-2, 1e-1, 1.0, 10.0)


@dataclass(frozen=True)
class Variant:
    """One row of the ablation: a recovery method with options and an allocation."""

    name: str
    method: str
    options: dict = field(default_factory=dict, hash=False)
    allocation: str = "bias-table"  # removal set: "bias-table" (today) or "recovered-table"
    calib: int | None = None  # calibration crops (None = --calib)


VARIANTS = {
    v.name: v
    for v in [
        Variant("none", "none"),
        Variant("lsq (today)", "lsq"),
        Variant("lsq (ridge 0.001)", "lsq", {"ridge": 0.001}),
        Variant("lsq (ridge 0.01)", "lsq", {"ridge": 0.01}),
        Variant("lsq (ridge 0.1)", "lsq", {"ridge": 0.1}),
        Variant("lsq (ridge 1)", "lsq", {"ridge": 1.0}),
        Variant("lsq (ridge 3)", "lsq", {"ridge": 3.0}),
        Variant("lsq (ridge 10)", "lsq", {"ridge": 10.0}),
        Variant("reconstruct (plain targets)", "reconstruct", {"block_output": False}),
        Variant("reconstruct", "reconstruct"),
        Variant("reconstruct + stats", "reconstruct", {"stats_correction": True}),
        Variant("reconstruct (activation fit)", "reconstruct", {"activation_fit": True}),
        Variant("reconstruct (ridge 0.1)", "reconstruct", {"ridge": 0.1}),
        Variant("reconstruct (ridge 0.3)", "reconstruct", {"ridge": 0.3}),
        Variant("reconstruct (ridge 1)", "reconstruct", {"ridge": 1.0}),
        Variant("reconstruct (ridge 3)", "reconstruct", {"ridge": 3.0}),
        Variant("reconstruct (CV ridge)", "reconstruct", {"ridge_grid": CV_GRID}),
        Variant("reconstruct (all layers)", "reconstruct", {"min_rows_per_column": 0.0}),
        Variant("reconstruct (table after lsq)", "reconstruct", allocation="recovered-table"),
    ]
}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cuts", default="0.1,0.2,0.3")
    parser.add_argument("--calib", type=int, default=128, help="calibration crops (<= 512)")
    parser.add_argument("--calib-sizes", default="32,128,512", help="rows for calibration size")
    parser.add_argument(
        "--augment", default="32:128", help="crops:images rows for augmentation ('' = none)"
    )
    parser.add_argument("--eval", type=int, default=256, help="evaluation crops")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument(
        "--digits-variants", default="lsq (today),reconstruct", help="rows of the digits table"
    )
    parser.add_argument("--sens-samples", type=int, default=32)
    parser.add_argument("--cache", default=None, help="folder to keep removal sets between runs")
    parser.add_argument("--skip-digits", action="store_true")
    parser.add_argument("--skip-effnet", action="store_true")
    parser.add_argument("--section", default=SECTION, help="docs/benchmarks.md marker name")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument(
        "--damp",
        type=float,
        default=None,
        help="OBS damping of the channel scores (default: the "
        "library's, onnxprune.defaults.OBS_DAMP)",
    )
    parser.add_argument(
        "--seeds",
        default=None,
        metavar="C,E",
        help="seeds of the calibration and evaluation "
        f"crops (default {CALIBRATION_SEED},{EVALUATION_SEED})",
    )
    args = parser.parse_args(argv)
    args.cuts = [float(c) for c in args.cuts.split(",") if c]
    args.calib_sizes = [int(c) for c in args.calib_sizes.split(",") if c]
    args.augment = [tuple(int(v) for v in a.split(":")) for a in args.augment.split(",") if a]
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    args.digits_variants = [v.strip() for v in args.digits_variants.split(",") if v.strip()]
    unknown = sorted(set(args.variants + args.digits_variants) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variant(s) {unknown}")
    return args


def say(message: str) -> None:
    print(message, flush=True)


class Effnet:
    """The model, crops, analysis, scores and removal sets (cached on disk when asked)."""

    def __init__(self, args, workdir: Path) -> None:
        import onnx
        from effnet.crops import CALIBRATION_PHOTOS, EVALUATION_PHOTOS, random_crops
        from effnet.measure import INPUT, SHAPE, count_macs, logits
        from effnet.model import RESOLUTION, export, load_pretrained

        from onnxprune.analysis import analyze
        from onnxprune.passes.prepare import prepare

        self.args = args
        self.input, self.shape = INPUT, SHAPE
        self.original = onnx.load(str(export(load_pretrained(), workdir / "lite2.onnx")))
        most = max([args.calib, *args.calib_sizes])
        self.crops = random_crops(CALIBRATION_PHOTOS, most, seed=CALIBRATION_SEED, size=RESOLUTION)
        self.evaluation = random_crops(
            EVALUATION_PHOTOS, args.eval, seed=EVALUATION_SEED, size=RESOLUTION
        )
        self.reference = logits(self.original, self.evaluation)
        self.macs = count_macs(self.original)
        _, prepared, _ = prepare(self.original, {INPUT: SHAPE})
        self.analysis = analyze(prepared, {INPUT: SHAPE})
        self.cache = Path(args.cache) if args.cache else None
        self.memo: dict = {}

    def calibration(self, count: int) -> dict:
        return {self.input: self.crops[:count]}

    def _stored(self, key: str, make):
        if key in self.memo:
            return self.memo[key]
        path = self.cache / f"{key}.pkl" if self.cache else None
        if path is not None and path.exists():
            value = pickle.loads(path.read_bytes())
        else:
            value = make()
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(pickle.dumps(value))
        self.memo[key] = value
        return value

    def scores(self):
        from onnxprune.importance import score_clusters

        def make():
            say("  scoring (obs)")
            return _timed(
                lambda: score_clusters(
                    self.analysis,
                    "obs",
                    original=self.original,
                    calibration=self.calibration(self.args.calib),
                    **damp_option(self.args),
                )
            )

        return self._stored(f"scores_{self.args.calib}{damp_key(self.args)}", make)

    def table(self, recovery: str):
        from onnxprune.recover import make_recovery
        from onnxprune.sensitivity import measure_sensitivity

        samples = self.args.sens_samples

        def make():
            say(f"  sensitivity table ({samples} crops, {recovery} recovery per point)")
            data = self.calibration(samples)
            recover = make_recovery(recovery, self.analysis, data, max_samples=samples)
            return _timed(
                lambda: measure_sensitivity(
                    self.analysis,
                    data,
                    ratios=(0.1, 0.25, 0.5, 0.75),
                    scores=self.scores()[0],
                    recover=recover,
                    max_samples=samples,
                    batch_size=samples,
                    original=self.original,
                )
            )

        return self._stored(
            f"table_{recovery}_{samples}_{self.args.calib}{damp_key(self.args)}", make
        )

    def removal(self, cut: float, allocation: str) -> tuple[set[int], float]:
        """(removed clusters, seconds of the data work that chose them)."""
        from onnxprune.sensitivity.allocate import allocate_by_sensitivity

        if allocation == "bias-table":
            recovery, options = "bias", {}
        else:
            recovery, options = "lsq", {"method": "knapsack", "measured_only": True}
        table, table_s = self.table(recovery)
        scores_s = self.scores()[1]
        found = allocate_by_sensitivity(
            table, self.analysis, cut * self.analysis.total_macs, **options
        )
        return set(found.removed), scores_s + table_s

    def evaluate(self, model) -> tuple[float, float, float]:
        from effnet.measure import count_macs, logits, top1_agreement, top5_containment

        out = logits(model, self.evaluation)
        cut = 1.0 - count_macs(model) / self.macs
        return top1_agreement(out, self.reference), top5_containment(out, self.reference), cut


def _timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def run_variant(bench: Effnet, cut: float, variant: Variant, calib: int, augment: int = 0) -> dict:
    """One recovery of the cut's removal set with ``calib`` crops (augmented to ``augment``
    images by random resized crops + flips when given)."""
    from onnxprune.calibrate.augment import augment_images
    from onnxprune.recover import make_recovery
    from onnxprune.rewrite import apply_removal, check_model

    removed, choose_s = bench.removal(cut, variant.allocation)
    pruned = apply_removal(bench.analysis, removed)
    data = bench.calibration(calib)
    if augment:
        data = {bench.input: augment_images(data[bench.input], augment, seed=CALIBRATION_SEED)}
    recover = make_recovery(
        variant.method,
        bench.analysis,
        data,
        max_samples=max(calib, augment),
        progress=say,
        **variant.options,
    )
    model, seconds = _timed(lambda: recover(bench.analysis, removed, pruned))
    check_model(model)
    top1, top5, measured = bench.evaluate(model)
    return {
        "top1": top1,
        "top5": top5,
        "cut": measured,
        "recovery_s": seconds,
        "choose_s": choose_s,
    }


def main(argv=None) -> int:
    import tempfile

    args = parse_args(argv)
    if args.seeds:
        global CALIBRATION_SEED, EVALUATION_SEED
        CALIBRATION_SEED, EVALUATION_SEED = (int(v) for v in args.seeds.split(","))
    started = time.perf_counter()
    load = os.getloadavg()
    results: dict = {}
    sizes: dict = {}
    with tempfile.TemporaryDirectory(prefix="bench_rv2_") as tmp:
        if args.skip_effnet:
            args.cuts = []
        else:
            say("building EfficientNet-Lite2 and crops")
            bench = Effnet(args, Path(tmp))
        for cut in args.cuts:
            for name in args.variants:
                row = run_variant(bench, cut, VARIANTS[name], args.calib)
                results[(cut, name)] = row
                say(f"[{cut:.0%}] {name}: {_cell(row)}; recovery {row['recovery_s']:.0f} s")
        best = "reconstruct"
        if 0.2 in args.cuts and best in args.variants:
            for count in args.calib_sizes:
                if count == args.calib:
                    sizes[count] = results[(0.2, best)]
                    continue
                sizes[count] = run_variant(bench, 0.2, VARIANTS[best], count)
                say(f"[20%] {best}, {count} crops: {_cell(sizes[count])}")
            for crops, images in args.augment:
                key = f"{crops} + augmentation to {images}"
                sizes[key] = run_variant(bench, 0.2, VARIANTS[best], crops, augment=images)
                say(f"[20%] {best}, {key}: {_cell(sizes[key])}")
    digits = None if args.skip_digits else run_digits(args)
    total = time.perf_counter() - started
    body = render(args, results, sizes, digits, total, load, os.getloadavg())
    print(body)
    if not args.no_write:
        write_section(args.section, body)
        say("wrote docs/benchmarks.md")
    return 0


def _cell(row: dict) -> str:
    return f"{row['top1']:.1%} / {row['top5']:.1%} ({row['cut']:.1%})"


def damp_option(args) -> dict:
    """``{"damp": D}`` when --damp was given (else the library default applies)."""
    return {} if args.damp is None else {"damp": args.damp}


def damp_key(args) -> str:
    """Cache-key suffix: scores and tables depend on the damping and the crop seeds."""
    damp = "" if args.damp is None else f"_damp{args.damp:g}"
    return damp + ("" if args.seeds is None else f"_seeds{args.seeds.replace(',', '-')}")


def run_digits(args) -> list[str]:
    """Digits models (bench_recovery_digits protocol, OBS scores): test accuracy per variant of
    ``--digits-variants`` (method and options of :data:`VARIANTS`)."""
    import numpy as np
    from bench_recovery_digits import ROOT as DIGITS
    from bench_recovery_digits import SHAPES, accuracy, removal_for

    from onnxprune.analysis import analyze
    from onnxprune.importance import score_clusters
    from onnxprune.passes.prepare import prepare
    from onnxprune.recover import make_recovery
    from onnxprune.rewrite import apply_removal
    from onnxprune.stats import count_macs

    calib = dict(np.load(DIGITS / "digits_calib.npz"))
    test = dict(np.load(DIGITS / "digits_test.npz"))
    rows = []
    for name in ("digits_vgg", "digits_mbv2"):
        original, prepared, _ = prepare(DIGITS / f"{name}.onnx", SHAPES)
        analysis = analyze(prepared, SHAPES)
        macs = count_macs(original, SHAPES).total
        scores = score_clusters(
            analysis, "obs", original=original, calibration=calib, **damp_option(args)
        )
        for target in (0.7, 0.5):
            removed, _, kept = removal_for(analysis, scores, macs, target)
            pruned = apply_removal(analysis, removed)
            cells = []
            for variant in (VARIANTS[v] for v in args.digits_variants):
                recover = make_recovery(variant.method, analysis, calib, **variant.options)
                model, seconds = _timed(partial(recover, analysis, removed, pruned))
                cells.append(f"{accuracy(model, test):.4f} ({seconds:.1f} s)")
                say(f"digits {name} {kept:.3f} {variant.name}: {cells[-1]}")
            rows.append([name, f"{kept:.3f}", f"{accuracy(original, test):.4f}", *cells])
    header = ["model", "MACs kept", "unpruned", *(f"obs + {v}" for v in args.digits_variants)]
    return markdown_table(header, rows).splitlines()


def render(args, results, sizes, digits, total, load_start, load_end) -> str:
    command = "python tools/bench_recovery_v2.py" + (
        " " + shlex.join(sys.argv[1:]) if sys.argv[1:] else ""
    )
    header = ["recovery", *(f"{cut:.0%} cut" for cut in args.cuts), "recovery s (max)"]
    rows = []
    for name in args.variants if args.cuts else []:
        cells = [_cell(results[(cut, name)]) for cut in args.cuts]
        worst = max(results[(cut, name)]["recovery_s"] for cut in args.cuts)
        rows.append([name, *cells, f"{worst:.0f}"])
    lines = [
        f"`{command}` — whole run {total / 60:.1f} min, load average "
        f"{load_start[0]:.2f} at start, {load_end[0]:.2f} at end (2 shared CPU cores).",
    ]
    if args.cuts:
        lines += [
            "",
            "EfficientNet-Lite2, protocol of `tools/bench_effnet_lite2.py` (crops, photos, "
            f"seeds, MAC counting) with {args.calib} calibration crops and {args.eval} "
            "evaluation crops from other photos. Cells: top-1 agreement / top-5 containment "
            "with the unpruned model (measured MAC cut). Removal: OBS scores, per-group "
            f"sensitivity table on {args.sens_samples} crops with bias recovery per point, "
            "greedy allocation; the same pruned model for every row except `table after lsq` "
            "(table measured with lsq recovery of the affected consumers per point, knapsack "
            "DP allocation, no level beyond the largest measured ratio). Column s: recovery "
            "only (scores + table are shared: see the notes).",
            "",
            markdown_table(header, rows),
            "",
        ]
    for cut, goal in TARGETS.items():
        if cut not in args.cuts:
            continue
        best = max(args.variants, key=lambda n: results[(cut, n)]["top1"])
        value = results[(cut, best)]["top1"]
        lines.append(
            f"- {cut:.0%} cut, target >= {goal:.0%} top-1 agreement: "
            f"{'met' if value >= goal else 'NOT met'} (best: {best}, {value:.1%})"
        )
    if args.cuts:
        shared = {
            name: max(results[(cut, name)]["choose_s"] for cut in args.cuts)
            for name in args.variants
        }
        lines.append(
            "- scores + sensitivity table (s, as measured when first computed; --cache keeps them): "
            + ", ".join(f"{name} {seconds:.0f}" for name, seconds in shared.items())
        )
    if sizes:
        lines += [
            "",
            "Calibration size, `reconstruct` at 20 % cut (same removal set):",
            "",
            markdown_table(
                ["crops", "top-1 / top-5 (cut)", "recovery s"],
                [[n, _cell(r), f"{r['recovery_s']:.0f}"] for n, r in sizes.items()],
            ),
        ]
    if digits:
        lines += ["", "Digits models (top-1 accuracy on the test split):", "", *digits]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
