"""Distillation recovery on EfficientNet-Lite2: gradient-step profile and accuracy table.

Protocol of ``tools/bench_effnet_lite2.py`` (crops, photos, seeds, MAC counting). The channels
removed at each MAC cut are chosen once (OBS scores and a per-group sensitivity table with bias
recovery on the first ``--calib`` calibration crops, greedy allocation; the same removal as
``tools/bench_recovery_v2.py``), then least-squares refit, then distillation
(:func:`onnxprune.recover.distill.distill`) on ``--distill-crops`` calibration crops (the first
``--calib`` of them plus more random-resized crops of the same photos), for every configuration
given. Top-1 agreement / top-5 containment on evaluation crops from other photos.

    # one gradient step, per op type, at batch 8 and 16 (ORT profiling)
    python tools/bench_distill_effnet.py profile --batches 8,16
    # the table (writes docs/benchmarks.md unless --no-write)
    python tools/bench_distill_effnet.py run --cuts 0.2,0.3 --configs 'lr3e-4 all,lr1e-3 all'

A configuration is written ``lr<value> <parameters>[ key=value ...]`` (parameters: a name of
``onnxprune.recover.distill.PARAMETER_SETS``; keys: steps, batch, schedule, temperature,
seconds, eval_every, patience).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import pickle
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from _markdown import markdown_table, write_section  # noqa: E402

SECTION = "distill-effnet"
CALIBRATION_SEED = 1
EVALUATION_SEED = 2
TARGETS = {0.2: 0.90, 0.3: 0.75}
BUDGET_S = 600.0


def say(message: str) -> None:
    print(message, flush=True)


def load() -> str:
    return "/".join(f"{v:.2f}" for v in os.getloadavg())


@dataclass(frozen=True)
class Config:
    """One distillation setting (see the module docstring for the notation)."""

    name: str
    lr: float
    parameters: str = "all"
    steps: int = 200
    batch: int = 8
    schedule: str = "constant"
    temperature: float = 1.0
    seconds: float | None = None
    eval_every: int = 10
    patience: int = 4

    @classmethod
    def parse(cls, text: str, defaults: dict) -> Config:
        words = text.split()
        if not words or not words[0].startswith("lr"):
            raise ValueError(f"configuration '{text}' must start with lr<value>")
        options: dict = {"lr": float(words[0][2:]), **defaults}
        if len(words) > 1 and "=" not in words[1]:
            options["parameters"] = words[1]
        for word in words[1:]:
            if "=" in word:
                key, value = word.split("=", 1)
                kinds = {"steps": int, "batch": int, "eval_every": int, "patience": int}
                kinds |= {"temperature": float, "seconds": float, "schedule": str}
                if key not in kinds:
                    raise ValueError(f"unknown key '{key}' in '{text}'")
                options[key] = kinds[key](value)
        return cls(text, **options)


class Effnet:
    """Model, crops, analysis and cached removal sets (same removal as bench_recovery_v2)."""

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
        most = max(args.calib, args.distill_crops)
        self.crops = random_crops(CALIBRATION_PHOTOS, most, seed=CALIBRATION_SEED, size=RESOLUTION)
        self.evaluation = random_crops(
            EVALUATION_PHOTOS, args.eval, seed=EVALUATION_SEED, size=RESOLUTION
        )
        self.reference = logits(self.original, self.evaluation) if args.eval else None
        self.macs = count_macs(self.original)
        _, prepared, _ = prepare(self.original, {INPUT: SHAPE})
        self.analysis = analyze(prepared, {INPUT: SHAPE})
        self.cache = Path(args.cache) if args.cache else None

    def _stored(self, key: str, make):
        path = self.cache / f"{key}.pkl" if self.cache else None
        if path is not None and path.exists():
            return pickle.loads(path.read_bytes())
        value = make()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(pickle.dumps(value))
        return value

    def removal(self, cut: float) -> tuple[set[int], float]:
        """(removed clusters, seconds of OBS scores + sensitivity table, as first measured)."""
        from onnxprune.importance import score_clusters
        from onnxprune.recover import make_recovery
        from onnxprune.sensitivity import measure_sensitivity
        from onnxprune.sensitivity.allocate import allocate_by_sensitivity

        calib = {self.input: self.crops[: self.args.calib]}
        scores, scores_s = self._stored(
            f"scores_{self.args.calib}",
            lambda: _timed(
                lambda: score_clusters(
                    self.analysis, "obs", original=self.original, calibration=calib
                )
            ),
        )
        samples = self.args.sens_samples
        data = {self.input: self.crops[:samples]}

        def table():
            recover = make_recovery("bias", self.analysis, data, max_samples=samples)
            return _timed(
                lambda: measure_sensitivity(
                    self.analysis,
                    data,
                    ratios=(0.1, 0.25, 0.5, 0.75),
                    scores=scores,
                    recover=recover,
                    max_samples=samples,
                    batch_size=samples,
                    original=self.original,
                )
            )

        found_table, table_s = self._stored(f"table_bias_{samples}_{self.args.calib}", table)
        found = allocate_by_sensitivity(found_table, self.analysis, cut * self.analysis.total_macs)
        return set(found.removed), scores_s + table_s

    def lsq(self, cut: float):
        """(pruned + least-squares refit model, removal seconds, lsq seconds)."""
        from onnxprune.recover import make_recovery
        from onnxprune.rewrite import apply_removal

        removed, choose_s = self.removal(cut)
        pruned = apply_removal(self.analysis, removed)

        def refit():
            calib = {self.input: self.crops[: self.args.calib]}
            recover = make_recovery("lsq", self.analysis, calib, max_samples=self.args.calib)
            return _timed(lambda: recover(self.analysis, removed, pruned))

        model, lsq_s = self._stored(f"lsq_{cut}_{self.args.calib}", refit)
        return model, choose_s, lsq_s

    def evaluate(self, model) -> tuple[float, float, float, float]:
        """(top-1 agreement, top-5 containment, MAC cut, mean KL(reference ‖ model))."""
        from effnet.measure import count_macs, logits, mean_kl, top1_agreement, top5_containment

        out = logits(model, self.evaluation)
        cut = 1.0 - count_macs(model) / self.macs
        top1, top5 = top1_agreement(out, self.reference), top5_containment(out, self.reference)
        return top1, top5, cut, mean_kl(self.reference, out)


def _timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


# -- profile ------------------------------------------------------------------------------


def profile(args) -> int:
    """Time gradient steps of the pruned (20 % cut) model per batch; ORT profile per op type."""
    import tempfile

    import numpy as np
    import onnxruntime as ort

    from onnxprune.autodiff import build_gradient_model, kl_divergence, reachable

    lines = []
    with tempfile.TemporaryDirectory(prefix="bench_distill_") as tmp:
        bench = Effnet(args, Path(tmp))
        pruned, _, _ = bench.lsq(args.profile_cut)
        loss = kl_divergence(pruned)
        floats = [init.name for init in pruned.graph.initializer if init.data_type == 1]
        trainable = reachable(pruned, loss, floats)
        training = pruned
        # Imported here so that an older checkout (before/after timings) runs the same script.
        if args.parameters != "all":
            from onnxprune.recover.distill import PARAMETER_SETS

            trainable = PARAMETER_SETS[args.parameters](pruned, trainable)
        try:
            from onnxprune.autodiff import fold_zero_pads

            training = fold_zero_pads(pruned)  # what distill differentiates
        except ImportError:
            say("(this checkout has no fold_zero_pads: the pruned graph is differentiated)")
        tick = time.perf_counter()
        model = build_gradient_model(training, loss, trainable)
        build_s = time.perf_counter() - tick
        output = pruned.graph.output[0].name
        say(f"gradient model: {len(model.graph.node)} nodes, built in {build_s:.1f} s")
        for batch in args.batches:
            options = ort.SessionOptions()
            options.log_severity_level = 4
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            options.enable_profiling = True
            options.profile_file_prefix = str(Path(tmp) / f"profile_b{batch}")
            session = ort.InferenceSession(
                model.SerializeToString(), options, providers=["CPUExecutionProvider"]
            )
            feeds = {
                bench.input: bench.crops[:batch],
                f"target/{output}": np.zeros((batch, 1000), np.float32),
            }
            session.run(None, feeds)  # warm-up, left out of the profile below
            session.end_profiling()
            options.enable_profiling = True
            session = ort.InferenceSession(
                model.SerializeToString(), options, providers=["CPUExecutionProvider"]
            )
            session.run(None, feeds)
            times = []
            for _ in range(args.repeats):
                tick = time.perf_counter()
                session.run(None, feeds)
                times.append(time.perf_counter() - tick)
            events = json.loads(Path(session.end_profiling()).read_text())
            per_op = _per_op(events, args.repeats + 1)
            median = float(np.median(times))
            say(f"batch {batch}: step {median:.2f} s (median of {args.repeats}), load {load()}")
            lines.append((batch, median, per_op, load()))
    body = render_profile(args, lines, len(model.graph.node), build_s)
    print(body)
    _save_md(args, body)
    return 0


def _save_md(args, body: str) -> None:
    """Keep a mode's markdown for ``run --include-md`` (one section, several measurements)."""
    if args.save_md:
        Path(args.save_md).write_text(body + "\n")
        say(f"wrote {args.save_md}")


def _per_op(events: list, runs: int) -> list[tuple[str, float, int]]:
    """(forward|backward op type, seconds per run, node count) sorted by time."""
    seconds: collections.Counter = collections.Counter()
    nodes: collections.Counter = collections.Counter()
    for event in events:
        if event.get("cat") != "Node" or not event["name"].endswith("_kernel_time"):
            continue
        name = event["name"][: -len("_kernel_time")]
        side = "backward" if name.startswith("grad/") else "forward"
        key = f"{side} {event['args'].get('op_name', '?')}"
        seconds[key] += event["dur"] / 1e6 / runs
        nodes[key] += 1
    return [(key, value, nodes[key] // runs) for key, value in seconds.most_common()]


def render_profile(args, lines, nodes: int, build_s: float) -> str:
    command = "python tools/bench_distill_effnet.py " + shlex.join(sys.argv[1:])
    header = ["batch", "step s", "load avg", "largest kernel shares (s per step, nodes)"]
    rows = []
    for batch, median, per_op, avg in lines:
        total = sum(value for _, value, _ in per_op)
        top = "; ".join(
            f"{key} {value:.2f} ({count}, {value / total:.0%})" for key, value, count in per_op[:6]
        )
        rows.append([batch, f"{median:.2f}", avg, top])
    return "\n".join(
        [
            f"`{command}` — one KL gradient step of the {args.profile_cut:.0%}-cut "
            f"EfficientNet-Lite2 (obs + sensitivity + lsq), parameters `{args.parameters}`, "
            f"{nodes} nodes (built in {build_s:.1f} s); median of {args.repeats} runs after a "
            "warm-up; kernel shares from ONNX Runtime profiling.",
            "",
            markdown_table(header, rows),
        ]
    )


def save_gradient(args) -> int:
    """Write the gradient model the profile times (to compare checkouts with ``interleave``)."""
    import tempfile

    import onnx

    from onnxprune.autodiff import build_gradient_model, kl_divergence, reachable

    with tempfile.TemporaryDirectory(prefix="bench_distill_") as tmp:
        bench = Effnet(args, Path(tmp))
        pruned, _, _ = bench.lsq(args.profile_cut)
    loss = kl_divergence(pruned)
    floats = [init.name for init in pruned.graph.initializer if init.data_type == 1]
    trainable = reachable(pruned, loss, floats)
    training = pruned
    if args.parameters != "all":
        from onnxprune.recover.distill import PARAMETER_SETS

        trainable = PARAMETER_SETS[args.parameters](pruned, trainable)
    try:
        from onnxprune.autodiff import fold_zero_pads

        training = fold_zero_pads(pruned)
    except ImportError:
        say("(this checkout has no fold_zero_pads: the pruned graph is differentiated)")
    onnx.save(build_gradient_model(training, loss, trainable), args.out)
    say(f"wrote {args.out} ({len(trainable)} trainable tensors)")
    return 0


def interleave(args) -> int:
    """Median step time of several gradient models, run in turn in one process (so that the
    load of a shared machine falls on all of them alike): wall seconds and CPU seconds of
    this process (both intra-op threads), the latter less sensitive to other jobs."""
    import numpy as np
    import onnxruntime as ort
    from effnet.crops import CALIBRATION_PHOTOS, random_crops
    from effnet.model import RESOLUTION

    crops = random_crops(
        CALIBRATION_PHOTOS, max(args.batches), seed=CALIBRATION_SEED, size=RESOLUTION
    )
    options = ort.SessionOptions()
    options.log_severity_level = 4
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sessions = {
        path: ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        for path in args.models
    }
    names = [Path(p).stem for p in args.models]
    header = ["batch", *(f"{n}: wall s" for n in names), *(f"{n}: CPU s" for n in names)]
    header.append("load avg")
    rows = []
    for batch in args.batches:
        wall: dict[str, list[float]] = {path: [] for path in args.models}
        cpu: dict[str, list[float]] = {path: [] for path in args.models}
        for round_ in range(args.repeats + 1):
            for path, session in sessions.items():
                feeds = {}
                for value in session.get_inputs():
                    if value.name == "input":
                        feeds[value.name] = crops[:batch]
                    elif value.name.startswith("target/"):
                        feeds[value.name] = np.zeros((batch, 1000), np.float32)
                tick, tock = time.perf_counter(), time.process_time()
                session.run(None, feeds)
                if round_:  # the first round warms up
                    wall[path].append(time.perf_counter() - tick)
                    cpu[path].append(time.process_time() - tock)
        walls = [float(np.median(wall[p])) for p in args.models]
        cpus = [float(np.median(cpu[p])) for p in args.models]
        say(
            f"batch {batch}: wall "
            + ", ".join(f"{m:.2f}" for m in walls)
            + " s; CPU "
            + ", ".join(f"{m:.2f}" for m in cpus)
            + f" s; load {load()}"
        )
        rows.append([batch, *(f"{m:.2f}" for m in walls), *(f"{m:.2f}" for m in cpus), load()])
    command = "python tools/bench_distill_effnet.py " + shlex.join(sys.argv[1:])
    body = "\n".join(
        [
            f"`{command}` — median seconds per gradient step (KL, batch of calibration crops) "
            f"over {args.repeats} rounds after a warm-up round, the models run in turn in one "
            "process; CPU s = CPU time of the process (2 intra-op threads).",
            "",
            markdown_table(header, rows),
        ]
    )
    print(body)
    _save_md(args, body)
    return 0


# -- run ------------------------------------------------------------------------------------


def run(args) -> int:
    import tempfile

    from onnxprune.calibrate.labelled import load_samples
    from onnxprune.recover.distill import DistillReport, distill
    from onnxprune.rewrite import check_model

    started, load_start = time.perf_counter(), load()
    results = []
    with tempfile.TemporaryDirectory(prefix="bench_distill_") as tmp:
        say("building EfficientNet-Lite2 and crops")
        bench = Effnet(args, Path(tmp))
        samples = load_samples(
            {bench.input: bench.crops[: args.distill_crops]},
            bench.analysis.model,
            max_samples=args.distill_crops,
        )
        for cut in args.cuts:
            base, choose_s, lsq_s = bench.lsq(cut)
            top1, top5, measured, eval_kl = bench.evaluate(base)
            say(
                f"[{cut:.0%}] lsq: top-1 {top1:.1%} top-5 {top5:.1%} (cut {measured:.1%}), "
                f"evaluation KL {eval_kl:.4f}"
            )
            results.append(
                dict(
                    cut=cut,
                    name="lsq (no distillation)",
                    top1=top1,
                    top5=top5,
                    measured=measured,
                    eval_kl=eval_kl,
                    choose_s=choose_s,
                    lsq_s=lsq_s,
                    distill_s=0.0,
                    steps=0,
                    best=0,
                    rate=0.0,
                    before=float("nan"),
                    after=float("nan"),
                    load=load(),
                )
            )
            for config in args.configs:
                report = DistillReport()
                seconds = config.seconds
                if seconds is None and args.fit_budget:
                    seconds = max(BUDGET_S - choose_s - lsq_s - args.reserve_s, 0.0)
                say(f"[{cut:.0%}] distill {config.name} (time cap {seconds} s), load {load()}")
                tick = time.perf_counter()
                model = distill(
                    bench.analysis.model,
                    base,
                    samples,
                    steps=config.steps,
                    batch_size=config.batch,
                    lr=config.lr,
                    temperature=config.temperature,
                    holdout=args.holdout,
                    eval_every=config.eval_every,
                    patience=config.patience,
                    parameters=config.parameters,
                    schedule=config.schedule,
                    max_seconds=seconds,
                    seed=0,
                    progress=say,
                    report=report,
                )
                distill_s = time.perf_counter() - tick
                check_model(model)
                top1, top5, measured, eval_kl = bench.evaluate(model)
                row = dict(
                    cut=cut,
                    name=config.name,
                    top1=top1,
                    top5=top5,
                    measured=measured,
                    eval_kl=eval_kl,
                    choose_s=choose_s,
                    lsq_s=lsq_s,
                    distill_s=distill_s,
                    steps=report.steps,
                    best=report.best_step,
                    rate=report.steps_per_second,
                    before=report.heldout_before,
                    after=report.heldout_after,
                    load=load(),
                )
                results.append(row)
                _save_json(args, results)
                say(
                    f"[{cut:.0%}] {config.name}: top-1 {top1:.1%} top-5 {top5:.1%}, "
                    f"evaluation KL {eval_kl:.4f}, "
                    f"{report.steps} steps (best {report.best_step}) in {distill_s:.0f} s, "
                    f"held-out KL {report.heldout_before:.4f} -> {report.heldout_after:.4f}, "
                    f"load {load()}"
                )
    total = time.perf_counter() - started
    body = render_run(args, results, total, load_start, load())
    print(body)
    _save_json(args, results)
    if not args.no_write:
        write_section(SECTION, body)
        say("wrote docs/benchmarks.md")
    return 0


def _save_json(args, results: list[dict]) -> None:
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


def render_run(args, results, total: float, load_start: str, load_end: str) -> str:
    command = "python tools/bench_distill_effnet.py " + shlex.join(sys.argv[1:])
    header = [
        "MAC cut",
        "recovery",
        "top-1 / top-5 (cut)",
        "evaluation KL",
        "scores+table s",
        "lsq s",
        "distill s",
        "total s",
        "steps (best)",
        "steps/s",
        "held-out KL before → after",
        "load avg",
    ]
    rows = []
    for r in results:
        whole = r["choose_s"] + r["lsq_s"] + r["distill_s"]
        rows.append(
            [
                f"{r['cut']:.0%}",
                r["name"],
                f"{r['top1']:.1%} / {r['top5']:.1%} ({r['measured']:.1%})",
                f"{r['eval_kl']:.4f}",
                f"{r['choose_s']:.0f}",
                f"{r['lsq_s']:.0f}",
                f"{r['distill_s']:.0f}",
                f"{whole:.0f}",
                f"{r['steps']} ({r['best']})" if r["steps"] else "",
                f"{r['rate']:.2f}" if r["rate"] else "",
                f"{r['before']:.4f} → {r['after']:.4f}" if r["steps"] else "",
                r["load"],
            ]
        )
    verdicts = []
    for cut, goal in TARGETS.items():
        within = [
            r
            for r in results
            if r["cut"] == cut and r["choose_s"] + r["lsq_s"] + r["distill_s"] <= BUDGET_S
        ]
        if not within:
            continue
        best = max(within, key=lambda r: r["top1"])
        verdicts.append(
            f"- {cut:.0%} cut, target >= {goal:.0%} top-1 agreement within 10 min: "
            f"{'met' if best['top1'] >= goal else 'NOT met'} (best within 10 min: "
            f"{best['name']}, {best['top1']:.1%})"
        )
    included = [Path(path).read_text().strip() for path in args.include_md.split(",") if path]
    return "\n".join(
        [
            *(part + "\n" for part in included),
            f"`{command}` — whole run {total / 60:.1f} min, load average (1/5/15 min) "
            f"{load_start} at start, {load_end} at end (2 shared CPU cores).",
            "",
            f"EfficientNet-Lite2, protocol of `tools/bench_effnet_lite2.py`. Removal: OBS scores on "
            f"{args.calib} calibration crops, sensitivity table on {args.sens_samples} crops (bias "
            "recovery per point), greedy allocation; then least-squares refit on the same "
            f"{args.calib} crops; then distillation (KL to the unpruned logits, Adam in numpy on the "
            f"initializers, ONNX backward graph in ONNX Runtime) on {args.distill_crops} calibration "
            f"crops ({args.holdout:.0%} held out for early stopping; best held-out parameters kept). "
            f"Evaluation: {args.eval} crops from other photos. Cells: top-1 agreement / top-5 "
            "containment with the unpruned model (measured MAC cut); evaluation KL: mean "
            "KL(unpruned ‖ pruned) of the softmax outputs on the evaluation crops. Seconds: scores + table as "
            "measured when first computed (shared by all cuts and rows), lsq per cut, distillation "
            "per row (gradient model + session + reference logits + steps + held-out scoring); "
            "total = their sum.",
            "",
            markdown_table(header, rows),
            "",
            *verdicts,
        ]
    )


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["profile", "run", "save-gradient", "interleave"])
    parser.add_argument("--cuts", default="0.2,0.3")
    parser.add_argument("--calib", type=int, default=64, help="crops for scores and lsq")
    parser.add_argument("--sens-samples", type=int, default=32)
    parser.add_argument("--distill-crops", type=int, default=256)
    parser.add_argument("--eval", type=int, default=128, help="evaluation crops")
    parser.add_argument("--holdout", type=float, default=0.1)
    parser.add_argument("--configs", default="lr3e-4 all", help="comma-separated")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument(
        "--fit-budget",
        action="store_true",
        help="cap each distillation so that the row's total fits 10 minutes",
    )
    parser.add_argument(
        "--reserve-s",
        type=float,
        default=30.0,
        help="with --fit-budget: seconds left for model building and scoring",
    )
    parser.add_argument("--cache", default=None, help="folder keeping scores, table, lsq models")
    parser.add_argument("--json", default=None)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--batches", default="8,16,32", help="profile: batch sizes")
    parser.add_argument("--repeats", type=int, default=3, help="profile: timed steps per batch")
    parser.add_argument("--profile-cut", type=float, default=0.2)
    parser.add_argument("--parameters", default="all", help="profile: parameter set")
    parser.add_argument(
        "--save-md", default="", help="profile/interleave: write the markdown to this file"
    )
    parser.add_argument(
        "--include-md", default="", help="run: markdown files (--save-md) put before the table"
    )
    parser.add_argument("--out", default="gradient.onnx", help="save-gradient: output file")
    parser.add_argument("--models", default="", help="interleave: gradient models, comma-separated")
    args = parser.parse_args(argv)
    args.models = [m for m in args.models.split(",") if m]
    args.cuts = [float(c) for c in args.cuts.split(",") if c]
    args.batches = [int(b) for b in args.batches.split(",") if b]
    defaults = {"steps": args.steps, "batch": args.batch}
    args.configs = [Config.parse(c.strip(), defaults) for c in args.configs.split(",") if c.strip()]
    if args.mode != "run":
        args.eval = 0
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    modes = {"profile": profile, "run": run, "save-gradient": save_gradient}
    return {**modes, "interleave": interleave}[args.mode](args)


if __name__ == "__main__":
    raise SystemExit(main())
