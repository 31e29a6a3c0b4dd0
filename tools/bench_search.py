"""Scheme search (``optimize(search=...)``): does the scheme it picks on the guard's held-out
data also keep the most on data it never saw?

Every scheme of the space runs on one session, exactly as ``optimize(search=...)`` runs it
(:func:`onnxprune.pipeline.scheme.open_session`, :func:`~onnxprune.pipeline.scheme.run_scheme`,
ranked by :func:`onnxprune.pipeline.search.rank_key`), and each scheme's best model is also
measured on data the search never reads:

* ``digits``: the shipped digits models, ``--data models/digits/digits_calib.npz`` (the guard
  holds out 30 % of it), target ``macs=0.5``, 2 guarded steps; test top-1 on the 450 labelled
  test digits.
* ``effnet``: EfficientNet-Lite2 with issue 17's protocol: calibration crops of the five
  calibration photos with a ``groups`` array (the guard holds out whole photos), guard off
  (``max_drop=100``: every scheme reaches the cut, the ranking is by the held-out KL), one step;
  top-1 agreement with the unpruned model on 128 crops of four other photos.

Columns: the selection metric on the guard's held-out data (what the search ranks), the figure
on unseen data, MACs kept, seconds of the scheme's run. ``*``: the scheme the search writes;
``(default)``: the scheme ``optimize`` runs without a search.

    python tools/bench_search.py --parts digits
    python tools/bench_search.py --parts effnet --cuts 0.2 --seeds 1,2
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from _markdown import markdown_table, publish  # noqa: E402

DIGITS = ROOT / "models" / "digits"


def _session_options(data: str, *, max_drop: float | None) -> dict:
    """``open_session``'s keywords as ``optimize`` passes them by default, with ``data`` (the
    guard holds out 30 % of it) and ``max_drop``."""
    return {
        "data": data,
        "eval_data": None,
        "metric": None,
        "max_drop": max_drop,
        "input_shapes": None,
        "eval_split": 0.3,
        "batch_size": 64,
        "max_eval_samples": None,
        "noise_sigma": 0.01,
        "synthesize": "auto",
        "progress": None,
    }


def search_rows(model, target, session_options, scheme_defaults, space, unseen):
    """Run every scheme of ``space`` on one session as ``optimize(search=space)`` does; return
    the rows (label, run, row, figure on unseen data), the chosen index, the index of the
    scheme ``optimize`` runs without a search (None when the space lacks it), the seconds and
    the session. ``unseen(model) -> float`` measures a model on data the session never
    reads."""
    from onnxprune.pipeline.drop_metric import guard_drop_metric
    from onnxprune.pipeline.scheme import (
        Scheme,
        Settings,
        _resolve_methods,
        open_session,
        run_scheme,
    )
    from onnxprune.pipeline.search import describe, expand_space, rank_key, scheme_row
    from onnxprune.pipeline.target import parse_target
    from onnxprune.sensitivity.metrics import resolve_drop_metric

    target = parse_target(target)
    started = time.perf_counter()
    session = open_session(model, target, Settings(), **session_options)
    drop = resolve_drop_metric(guard_drop_metric(session.evaluator.metric))[1]
    schemes = expand_space(Scheme(**scheme_defaults), space)
    rows, keys = [], []
    for index, scheme in enumerate(schemes):
        tick = time.perf_counter()
        run = run_scheme(session, scheme)
        row = scheme_row(index, {}, run, session, time.perf_counter() - tick, drop)
        keys.append(rank_key(row))
        rows.append((describe(scheme, space), run, row, unseen(run.outcome.best.model)))
    chosen = min(range(len(rows)), key=lambda i: keys[i])
    calibration = session.evaluator.calibration
    default = _resolve_methods(None, None, None, True, len(calibration))
    defaults_at = [
        i for i, (_, run, _, _) in enumerate(rows)
        if (run.criterion, run.allocation, run.recovery) == default
    ]  # fmt: skip
    return rows, chosen, (defaults_at or [None])[0], time.perf_counter() - started, session


def _table(rows, chosen, default, metric_name, unseen_name):
    body = []
    for index, (label, run, row, unseen) in enumerate(rows):
        mark = ("*" if index == chosen else "") + (" (default)" if index == default else "")
        methods = f"{run.criterion} / {run.allocation} / {run.recovery}"
        body.append(
            [
                f"{label}{mark}",
                methods,
                run.outcome.status,
                f"{row.metric_after:.4g}" if row.metric_after is not None else "-",
                f"{row.distance:.4f}" if row.distance is not None else "-",
                f"{unseen:.1f} %",
                f"{row.macs_ratio:.3f}",
                f"{row.seconds:.0f}",
            ]
        )
    header = [
        "scheme",
        "criterion / allocation / recovery",
        "status",
        f"{metric_name} (held out)",
        "distance (held out)",
        unseen_name,
        "MACs kept",
        "s",
    ]
    return markdown_table(header, body)


def digits_part(write: bool) -> None:
    test = np.load(DIGITS / "digits_test.npz")
    sections = []
    for name in ("digits_vgg", "digits_mbv2"):
        import onnxruntime as ort

        def unseen(model, _x=test["input"], _y=test["labels"]):
            session = ort.InferenceSession(
                model.SerializeToString(), providers=["CPUExecutionProvider"]
            )
            logits = session.run(None, {session.get_inputs()[0].name: _x})[0]
            return 100.0 * float(np.mean(logits.argmax(1) == _y))

        load = os.getloadavg()[0]
        rows, chosen, default, seconds, session = search_rows(
            str(DIGITS / f"{name}.onnx"),
            "macs=0.5",
            _session_options(str(DIGITS / "digits_calib.npz"), max_drop=None),
            {"steps": 2},
            {"criterion": ["obs", "taylor"], "recover": ["lsq", "reconstruct"]},
            unseen,
        )
        sections.append(
            f"**{name}** (original test top-1 {unseen(session.original):.2f} %; search "
            f"{seconds:.0f} s, load average "
            f"{load:.1f}–{os.getloadavg()[0]:.1f}):\n\n"
            + _table(rows, chosen, default, session.evaluator.metric_name, "test top-1")
        )
    body = (
        "`python tools/bench_search.py --parts digits` — target `macs=0.5`, 2 guarded steps, "
        "`--data models/digits/digits_calib.npz` (the guard holds out 30 %), the space "
        "`criterion=obs,taylor` × `recover=lsq,reconstruct` (the `auto` space with data). "
        "`*` = the scheme the search writes.\n\n" + "\n\n".join(sections)
    )
    publish("search-digits", body, write)


def effnet_part(write: bool, cuts: list[float], seeds: tuple[int, int], calib: int) -> None:
    from effnet.crops import CALIBRATION_PHOTOS, EVALUATION_PHOTOS, random_crops
    from effnet.measure import logits, top1_agreement
    from effnet.model import RESOLUTION, export, load_pretrained

    calib_seed, eval_seed = seeds
    sections = []
    with tempfile.TemporaryDirectory(prefix="onnxprune-search-") as name:
        folder = Path(name)
        model = export(load_pretrained(), folder / "effnet.onnx")
        crops = random_crops(CALIBRATION_PHOTOS, calib, seed=calib_seed, size=RESOLUTION)
        groups = np.array([i % len(CALIBRATION_PHOTOS) for i in range(calib)])
        np.savez(folder / "calibration.npz", input=crops, groups=groups)
        evaluation = random_crops(EVALUATION_PHOTOS, 128, seed=eval_seed, size=RESOLUTION)
        reference = logits(onnx.load(str(model)), evaluation)

        def unseen(candidate):
            return 100.0 * top1_agreement(logits(candidate, evaluation), reference)

        for cut in cuts:
            load = os.getloadavg()[0]
            rows, chosen, default, seconds, session = search_rows(
                str(model),
                f"macs={1 - cut:.4g}",
                _session_options(str(folder / "calibration.npz"), max_drop=100.0),
                {"steps": 1},
                {"criterion": ["obs", "taylor"], "recover": ["lsq", "reconstruct"]},
                unseen,
            )
            held = len(session.evaluator.evaluation)
            sections.append(
                f"**{cut:.0%} MAC cut, crop seeds {calib_seed}, {eval_seed}** ({calib} "
                f"calibration crops, {held} of them held out by photo for the guard, where the "
                f"original's {session.evaluator.metric_name} is "
                f"{session.evaluator.baseline:.2f}; "
                f"{seconds:.0f} s in all, load average {load:.1f}–{os.getloadavg()[0]:.1f}):\n\n"
                + _table(
                    rows,
                    chosen,
                    default,
                    session.evaluator.metric_name,
                    "agreement on other photos",
                )
            )
    body = (
        f"`python tools/bench_search.py --parts effnet --cuts {','.join(f'{c:g}' for c in cuts)} "
        f"--seeds {calib_seed},{eval_seed} --calib {calib}` — EfficientNet-Lite2, guard off "
        "(`max_drop=100`), one step, the `auto` space with data. The search ranks by the "
        "held-out columns (expected top-1, higher is better; then the KL distance, lower is "
        "better); agreement is on 128 crops of chelsea, rocket and the two motorcycles, which "
        "no scheme sees. `*` = the scheme the search writes.\n\n" + "\n\n".join(sections)
    )
    publish(f"search-effnet-{calib_seed}-{eval_seed}", body, write)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="digits,effnet")
    parser.add_argument("--cuts", default="0.2", help="EfficientNet MAC cuts, comma-separated")
    parser.add_argument("--seeds", default="1,2", help="calibration, evaluation crop seeds")
    parser.add_argument("--calib", type=int, default=512, help="calibration crops")
    parser.add_argument("--no-write", action="store_true", help="print instead of writing")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    parts = args.parts.split(",")
    if "digits" in parts:
        digits_part(not args.no_write)
    if "effnet" in parts:
        seeds = tuple(int(s) for s in args.seeds.split(","))
        cuts = [float(c) for c in args.cuts.split(",")]
        effnet_part(not args.no_write, cuts, seeds, args.calib)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
