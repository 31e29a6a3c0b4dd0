"""`onnxprune optimize --task detect` with its defaults on an ultralytics YOLOv8n export, real photos.

The model is ``320n.onnx`` from the ``nudenet`` 3.4.2 wheel (``pip install --no-deps
nudenet==3.4.2``): ultralytics 8.2.46 exported it with PyTorch 2.3.1, opset 17, dynamic batch,
height and width, one output [N, 4 + 18, A] (the ``yolov8`` decoder). Its 18 classes are
body-part classes, so most skimage photos give it nothing to find: only the faces of
``astronaut`` and ``camera`` reach the 0.25 score threshold. That makes it a test of the
``*_vs_original`` guard when the original is quiet (docs/ARCHITECTURE.md, "the pseudo-truth
threshold falls when the original is quiet"). ``tools/bench_tasks.py --third-party-yolo`` runs
the same model with l1, global allocation and no recovery on views of the people photos; this
tool runs ``optimize``'s defaults (obs, sensitivity table, lsq) on crops of other photos.

Runs with every option default but the task, the decoder and the target (and the options
named), the calibration crops (96) from other photos than the evaluation crops (64):

* ``quiet``: evaluation on photos where the original finds no box of score ≥ 0.25;
* ``faces``: evaluation on the two photos with faces;
* ``faces-kl-table``: the same with the sensitivity table measured by ``kl`` (the drop metric
  before the task guard chose it: ``--kind-option sensitivity_metric=kl``);
* ``faces-drop3`` and ``faces-drop3-kl-table``: both with ``--max-drop 3``.

Crops: random-resized (area share 0.25–1, horizontal flips, seed 1 / 2) to 320×320, RGB in
[0, 1] (the package's own preprocessing), NCHW, with a ``groups`` array naming each photo.

    python tools/bench_yolov8_third_party.py            # writes the yolov8-third-party section
    python tools/bench_yolov8_third_party.py --no-write
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

from _markdown import markdown_table, write_section  # noqa: E402
from _optimize_report import full_steps, kept_steps, sensitivity_drop_metric  # noqa: E402
from bench_tasks import _run_command  # noqa: E402

SECTION = "yolov8-third-party"
INSTALL = "pip install --no-deps nudenet==3.4.2"
CALIBRATION = ("coffee", "chelsea", "moon", "colorwheel", "clock", "rocket")
QUIET = ("motorcycle_left", "hubble_deep_field", "retina", "immunohistochemistry")
FACES = ("astronaut", "camera")
KL_TABLE = ("--kind-option", "sensitivity_metric=kl")
RUNS = {  # name: (evaluation photos, target, extra options)
    "quiet": (QUIET, "macs=0.7", ()),
    "faces": (FACES, "macs=0.8", ()),
    "faces-kl-table": (FACES, "macs=0.8", KL_TABLE),
    "faces-drop3": (FACES, "macs=0.8", ("--max-drop", "3")),
    "faces-drop3-kl-table": (FACES, "macs=0.8", ("--max-drop", "3", *KL_TABLE)),
}
SIZE = 320


def model_path() -> Path:
    spec = importlib.util.find_spec("nudenet")
    if spec is None or spec.origin is None:
        raise SystemExit(f"needs: {INSTALL}")
    return Path(spec.origin).parent / "320n.onnx"


def load_photo(name: str) -> np.ndarray:
    """RGB uint8 (H, W, 3) from skimage.data (grey photos repeated over 3 channels)."""
    from skimage import data

    image = data.stereo_motorcycle()[0] if name == "motorcycle_left" else getattr(data, name)()
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    return image[..., :3]


def crops(photos: tuple[str, ...], count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` random-resized crops [count, 3, SIZE, SIZE] in [0, 1] and their photo names."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    images = [load_photo(name) for name in photos]
    out = np.empty((count, 3, SIZE, SIZE), np.float32)
    for index in range(count):
        image = images[index % len(images)]
        rows, cols = image.shape[:2]
        share = rng.uniform(0.25, 1.0)
        aspect = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        h = min(rows, round(math.sqrt(rows * cols * share / aspect)))
        w = min(cols, round(math.sqrt(rows * cols * share * aspect)))
        top, left = int(rng.integers(0, rows - h + 1)), int(rng.integers(0, cols - w + 1))
        patch = image[top : top + h, left : left + w]
        if rng.random() < 0.5:
            patch = patch[:, ::-1]
        resized = Image.fromarray(np.ascontiguousarray(patch)).resize((SIZE, SIZE), Image.BILINEAR)
        out[index] = (np.asarray(resized, np.float32) / 255.0).transpose(2, 0, 1)
    groups = np.array([photos[i % len(photos)] for i in range(count)])
    return out, groups


def run(name: str, model: Path, calibration: Path, work: Path) -> list:
    photos, target, extra = RUNS[name]
    evaluation = work / f"{name}.npz"
    images, groups = crops(photos, 64, seed=2)
    np.savez(evaluation, images=images, groups=groups)
    report_path = work / f"{name}.json"
    command = [
        "onnxprune", "optimize", str(model), "--data", str(calibration),
        "--eval", str(evaluation), "--task", "detect", "--decoder", "yolov8", "--target", target,
        "-o", str(work / f"{name}.onnx"), "--report-json", str(report_path), "--force", "--quiet",
        *extra,
    ]  # fmt: skip
    result = _run_command(command, name, work)
    report = result["report"]
    lowered = [
        note.split(" on the evaluation data")[0] + note.split(" (64 images)")[-1]
        for note in report.get("notes", [])
        if "as the truth there" in note
    ]
    after = report["task"]["after"]
    return [
        name,
        ", ".join(photos),
        target,
        " ".join(extra) or "-",
        sensitivity_drop_metric(report),
        result["exit"],
        lowered[0] if lowered else "no (threshold 0.25)",
        f"{report['guard']['noise']['floor']:.2f} / {report['guard']['threshold']:.2f}",
        kept_steps(report),
        full_steps(report),
        f"{report['macs_ratio']:.3f}",
        f"{report['metric_before']:.2f} → {report['metric_after']:.2f}",
        f"{after.get('det_recall_vs_original', float('nan')):.1f}",
        f"{result['seconds']:.0f}",
        result["load"],
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", choices=sorted(RUNS), default=list(RUNS))
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    model = model_path()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        calibration = work / "calibration.npz"
        images, groups = crops(CALIBRATION, 96, seed=1)
        np.savez(calibration, images=images, groups=groups)
        rows = [run(name, model, calibration, work) for name in args.runs]
    header = [
        "run", "evaluation photos", "target", "options", "sensitivity table", "exit",
        "pseudo truth lowered",
        "noise floor / guard threshold (points)", "steps kept",
        "full steps tried (MACs kept: map50_vs_original)", "MACs kept",
        "map50_vs_original before → after", "det_recall_vs_original after", "wall s",
        "load avg",
    ]  # fmt: skip
    body = "\n".join(
        [
            "## An ultralytics YOLOv8n export with optimize's defaults: a quiet original, the task-measured sensitivity table",
            "",
            "`320n.onnx` of the nudenet 3.4.2 wheel (ultralytics 8.2.46, PyTorch 2.3.1, opset "
            "17, dynamic height and width; 18 body-part classes). `onnxprune optimize --task "
            "detect --decoder yolov8 --target T`, every other option default; 96 calibration "
            f"crops of {', '.join(CALIBRATION)}; 64 evaluation crops of the photos named in "
            "the table (no ground truth, so the guard metric is `map50_vs_original`). Exit 3: "
            "the guard stopped before the target (best model written). 2 CPU cores.",
            "",
            markdown_table(header, rows),
            "",
            f"Command: `python tools/bench_yolov8_third_party.py --runs {' '.join(args.runs)}` "
            f"(needs `{INSTALL}`).",
        ]
    )
    print(body)
    if not args.no_write:
        write_section(SECTION, body)


if __name__ == "__main__":
    main()
