"""Task benchmark: ``onnxprune optimize --task`` on the shipped shapes detector and segmenter.

For each demo, the default data-driven pipeline (obs criterion, sensitivity allocation, lsq
recovery; calibration ``shapes_calib.npz``, evaluation ``shapes_test.npz``) toward a MAC
target (default ``macs=0.7``, a 30 % cut) with the guard on the task metric (``map50`` /
``miou`` against the ground truth, max-drop 2 points). One CLI run per model (the command is
recorded as run); the table takes metric before/after, MACs ratio, latency ratio (p50,
interleaved, ORT CPU, batch 1) and the wall time from the JSON report, with ``uptime``'s load
average beside it (the machine is shared).

    python tools/bench_tasks.py                 # both demos, writes docs/benchmarks.md
    python tools/bench_tasks.py --models shapes_detector --no-write
    python tools/bench_tasks.py --models --third-party-text  # PP-OCRv4 only (own section)

``--third-party-text`` adds a model nobody trained here: the PP-OCRv4 mobile text detector
(DBNet, exported by Paddle2ONNX) shipped inside the ``rapidocr-onnxruntime`` wheel (not in an extra, since
its dependencies would pull the CPU onnxruntime: ``pip install --no-deps rapidocr-onnxruntime==1.4.4``), run on 16 real photos from
``skimage.data`` (scanned page and text crops, natural photos) at 320×320 with ImageNet
normalisation, WITHOUT labels: ``--task segment --decoder probability`` so the guard uses
``mask_iou_vs_original`` (the original's thresholded text map as ground truth). To keep the
run short on a shared machine it uses l1 + global + no recovery.

``--third-party-yolo`` adds a YOLO-family detector nobody trained here: NudeNet 3.4.2's
``320n.onnx`` (Ultralytics YOLOv8n, 18 classes of people's body parts and faces, exported by
Ultralytics 8.2.46 from PyTorch 2.3.1; ``pip install --no-deps nudenet==3.4.2``), on 16 views
of skimage.data photos (12 of the two photos of people, 4 other scenes) at 320×320, RGB in [0, 1], WITHOUT labels:
``--task detect --decoder yolov8`` so the guard uses ``map50_vs_original`` (the original's
boxes after NMS as ground truth); same short settings as the text detector.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

from _markdown import markdown_table, write_section  # noqa: E402

SHAPES = ROOT / "models" / "shapes"
DEMOS = {
    "shapes_detector": ("detect", "yolov8", "map50"),
    "shapes_segmenter": ("segment", "logits", "miou"),
}
SECTION = "issue14-tasks"


def load_average() -> str:
    """The 1-minute load average and the CPU count, e.g. ``15.2 (2 CPUs)``."""
    return f"{os.getloadavg()[0]:.1f} ({os.cpu_count()} CPUs)"


def command_for(model: str, target: str, max_drop: float, out: Path) -> list[str]:
    task, decoder, metric = DEMOS[model]
    return [
        "onnxprune", "optimize", f"models/shapes/{model}.onnx",
        "--data", "models/shapes/shapes_calib.npz", "--eval", "models/shapes/shapes_test.npz",
        "--task", task, "--decoder", decoder, "--metric", metric,
        "--target", target, "--max-drop", f"{max_drop:g}",
        "-o", str(out / f"{model}.pruned.onnx"), "--report-json", str(out / f"{model}.json"),
        "--force", "--quiet",
    ]  # fmt: skip


def run(model: str, target: str, max_drop: float, out: Path) -> dict:
    """Run one optimize through the CLI; the report plus command, wall time, load."""
    return _run_command(command_for(model, target, max_drop, out), model, out)


TEXT_IMAGES = ("page", "text", "camera", "coins", "astronaut", "coffee", "chelsea", "rocket")
TEXT_SIZE = 320


def text_detector_path() -> Path:
    """The PP-OCRv4 detector ONNX inside the installed rapidocr-onnxruntime wheel."""
    import importlib.util

    spec = importlib.util.find_spec("rapidocr_onnxruntime")
    if spec is None or spec.origin is None:
        raise SystemExit(
            "--third-party-text needs: pip install --no-deps rapidocr-onnxruntime==1.4.4"
        )
    return Path(spec.origin).parent / "models" / "ch_PP-OCRv4_det_infer.onnx"


def text_photos(path: Path) -> None:
    """16 images [16, 3, 320, 320] float32 (two 320x320 views of each TEXT_IMAGES photo: the
    whole photo resized, and its top-left square crop resized), ImageNet mean/std."""
    import numpy as np
    import skimage.data
    from PIL import Image

    images = []
    for name in TEXT_IMAGES:
        photo = getattr(skimage.data, name)()
        if photo.ndim == 2:
            photo = np.stack([photo] * 3, axis=-1)
        side = min(photo.shape[:2])
        for view in (photo, photo[:side, :side]):
            resized = Image.fromarray(view[..., :3].astype(np.uint8)).resize(
                (TEXT_SIZE, TEXT_SIZE), Image.BILINEAR
            )
            images.append(np.asarray(resized, dtype=np.float32) / 255.0)
    array = (np.stack(images) - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
    np.savez(path, x=array.transpose(0, 3, 1, 2).astype(np.float32))


YOLO_PEOPLE = ("astronaut", "camera")  # photos with a person: the detector's domain
YOLO_OTHERS = ("coffee", "chelsea", "rocket", "motorcycle")


def yolo_detector_path() -> Path:
    """NudeNet's YOLOv8n ONNX inside the installed nudenet wheel (not imported: it needs cv2)."""
    import importlib.util

    spec = importlib.util.find_spec("nudenet")
    if spec is None or spec.origin is None:
        raise SystemExit("--third-party-yolo needs: pip install --no-deps nudenet==3.4.2")
    return Path(spec.origin).parent / "320n.onnx"


def yolo_photos(path: Path) -> None:
    """16 images [16, 3, 320, 320] float32 in [0, 1] (RGB, Ultralytics' input): six views of
    each YOLO_PEOPLE photo (whole, left / centre / right squares, mirrored whole and centre)
    and the whole of each YOLO_OTHERS photo, resized."""
    import numpy as np
    import skimage.data
    from PIL import Image

    def load(name: str) -> np.ndarray:
        photo = skimage.data.stereo_motorcycle()[0] if name == "motorcycle" else None
        photo = getattr(skimage.data, name)() if photo is None else photo
        return np.stack([photo] * 3, axis=-1) if photo.ndim == 2 else photo[..., :3]

    views = []
    for name in YOLO_PEOPLE:
        photo = load(name)
        height, width = photo.shape[:2]
        side = min(height, width)
        squares = [photo[:side, start : start + side] for start in (0, (width - side) // 2)]
        squares.append(photo[height - side :, width - side :])
        views += [photo, *squares, photo[:, ::-1], squares[1][:, ::-1]]
    views += [load(name) for name in YOLO_OTHERS]
    images = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(view).astype(np.uint8)).resize(
                (TEXT_SIZE, TEXT_SIZE), Image.BILINEAR
            ),
            dtype=np.float32,
        )
        / 255.0
        for view in views
    ]
    np.savez(path, images=np.stack(images).transpose(0, 3, 1, 2).astype(np.float32))


def run_yolo_detector(target: str, max_drop: float, out: Path) -> dict:
    """optimize on NudeNet's YOLOv8n without labels (module doc)."""
    data = out / "yolo_photos.npz"
    yolo_photos(data)
    command = [
        "onnxprune", "optimize", str(yolo_detector_path()), "--data", str(data),
        "--input-shape", f"images:1,3,{TEXT_SIZE},{TEXT_SIZE}",
        "--task", "detect", "--decoder", "yolov8", "--target", target,
        "--max-drop", f"{max_drop:g}", "--criterion", "l1", "--allocation", "global",
        "--recover", "none", "-o", str(out / "yolo.pruned.onnx"),
        "--report-json", str(out / "yolov8n.json"), "--force", "--quiet",
    ]  # fmt: skip
    return _run_command(command, "nudenet 320n (YOLOv8n, Ultralytics export)", out)


def run_text_detector(target: str, max_drop: float, out: Path) -> dict:
    """optimize on the PP-OCRv4 text detector without labels (module doc)."""
    model = text_detector_path()
    data = out / "text_photos.npz"
    text_photos(data)
    command = [
        "onnxprune", "optimize", str(model), "--data", str(data),
        "--input-shape", f"x:1,3,{TEXT_SIZE},{TEXT_SIZE}",
        "--task", "segment", "--decoder", "probability", "--target", target,
        "--max-drop", f"{max_drop:g}", "--criterion", "l1", "--allocation", "global",
        "--recover", "none", "-o", str(out / "text.pruned.onnx"),
        "--report-json", str(out / "ppocrv4_det.json"), "--force", "--quiet",
    ]  # fmt: skip
    return _run_command(command, "ppocrv4_det (rapidocr-onnxruntime, Paddle2ONNX)", out)


def _run_command(command: list[str], label: str, out: Path) -> dict:
    load_before = load_average()
    start = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.run(
        [sys.executable, "-m", "onnxprune.cli", *command[1:]],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    if process.returncode not in (0, 3):
        raise SystemExit(f"{' '.join(command)} failed ({process.returncode}): {process.stderr}")
    report_path = Path(command[command.index("--report-json") + 1])
    report = json.loads(report_path.read_text())
    printable = [
        Path(c).name
        if c.startswith((str(out), "/")) and c.endswith((".onnx", ".json", ".npz"))
        else c
        for c in command
    ]
    return {
        "model": label,
        "report": report,
        "exit": process.returncode,
        "seconds": seconds,
        "load": f"{load_before} → {load_average()}",
        "command": " ".join(printable),
    }


def _guard(report: dict) -> str:
    guard = report.get("guard") or {}
    if "threshold" not in guard:
        return "-"
    floor = (guard.get("noise") or {}).get("floor")
    return f"{guard['threshold']:.2f}" + ("" if floor is None else f" ({floor:.2f})")


THIRD_PARTY_INTRO = (
    "Models nobody trained here, from PyPI wheels, on 16 views of real photos from "
    "skimage.data at 320×320, no labels. PP-OCRv4 mobile text detector (DBNet, exported by "
    "Paddle2ONNX, in the rapidocr-onnxruntime 1.4.4 wheel): `--task segment --decoder "
    "probability`, guard on mask_iou_vs_original (the original's text map thresholded at 0.5 "
    "as ground truth). NudeNet 3.4.2 `320n.onnx` (Ultralytics YOLOv8n, 18 classes, exported by "
    "Ultralytics from PyTorch): `--task detect --decoder yolov8`, guard on map50_vs_original "
    "(the original's boxes after NMS as ground truth). Both: l1 + global + no recovery to keep "
    "the runs short. Written by `python tools/bench_tasks.py --models --third-party-text "
    "--third-party-yolo`."
)
DEMO_INTRO = (
    "Shipped shapes demos (models/shapes, 64×64 synthetic shapes, 128 test images), default "
    "data-driven pipeline (obs + sensitivity + lsq), guard on the task metric against the "
    "ground-truth boxes/masks of the test split. Written by `python tools/bench_tasks.py`."
)


def table(results: list[dict], max_drop: float, intro: str = DEMO_INTRO) -> str:
    rows = []
    for result in results:
        report = result["report"]
        drop = report["metric_drop"]
        latency = report.get("latency_ratio")
        rows.append(
            [
                result["model"],
                report["metric_name"],
                f"{report['metric_before']:.2f}",
                f"{report['metric_after']:.2f}",
                f"{drop:.2f}",
                "met" if drop is not None and drop <= max_drop else "NOT met",
                _guard(report),
                f"{report['macs_ratio']:.3f}",
                "-" if latency is None else f"{latency:.3f}",
                report["status"],
                f"{result['seconds']:.0f} s",
                result["load"],
            ]
        )
    header = [
        "model", "metric", "before", "after", "drop", f"drop ≤ {max_drop:g}",
        "guard threshold (noise floor)", "MACs kept",
        "latency p50 ratio", "status", "wall", "load avg (before → after)",
    ]  # fmt: skip
    title = "demos" if intro == DEMO_INTRO else "third-party model without labels"
    commands = "\n".join(f"    {r['command']}" for r in results)
    return (
        f"## Detection and segmentation (optimize --task): {title}\n\n"
        + intro
        + " Latency: ORT CPU, interleaved original/pruned, p50 at batch 1.\n\n"
        + markdown_table(header, rows)
        + "\n\nCommands (from the repository root):\n\n"
        + commands
        + "\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", nargs="*", choices=sorted(DEMOS), default=sorted(DEMOS))
    parser.add_argument("--target", default="macs=0.7")
    parser.add_argument("--max-drop", type=float, default=2.0)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--third-party-text", action="store_true", help="add PP-OCRv4 det")
    parser.add_argument("--third-party-yolo", action="store_true", help="add a YOLOv8n")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        results = [run(m, args.target, args.max_drop, Path(folder)) for m in args.models]
        if args.third_party_text:
            results.append(run_text_detector(args.target, args.max_drop, Path(folder)))
        if args.third_party_yolo:
            results.append(run_yolo_detector(args.target, args.max_drop, Path(folder)))
    body = table(results, args.max_drop, DEMO_INTRO if args.models else THIRD_PARTY_INTRO)
    print(body)
    section = SECTION if args.models else SECTION + "-third-party"
    if not args.no_write:
        write_section(section, f"<!-- generated by tools/bench_tasks.py -->\n{body}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
