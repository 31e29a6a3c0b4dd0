"""Train the shapes detector and segmenter on CPU and write the committed artifacts.

Run as ``python models/shapes/train.py`` (or ``python -m models.shapes.train`` from the
repository root). Writes next to this file (or to ``--out-dir``): ``shapes_detector.onnx``,
``shapes_segmenter.onnx``, ``shapes_test.npz``, ``shapes_calib.npz`` and ``metrics.json``
(mAP and mIoU measured with onnxruntime on the exported files, through onnxprune's own task
metrics). Deterministic: fixed seeds, 1 CPU thread, deterministic algorithms.

Detector loss (anchor-free, YOLOv8-style outputs): an anchor point is *positive* for a ground
truth box when it lies inside the box and within ``CENTRE_RADIUS`` strides of its centre (the
smallest such box wins). Class loss: binary cross-entropy on every anchor and class, target
1 for the positive anchor's class and 0 elsewhere, summed and divided by the number of
positives. Box loss on positives: 1 - GIoU plus the L1 distance of the edge distances in
strides. Segmenter loss: cross-entropy per pixel.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn
from torch.nn import functional as F

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from models.shapes import ARTIFACT_DIR, data, nets  # noqa: E402

OPSET = 17
INPUT_NAME = "images"
NUM_THREADS = 1
SEED = 0
TRAIN_SIZE = 1600
TEST_SIZE = 128
CALIB_SIZE = 128
CENTRE_RADIUS = 1.5
DETECTOR_WIDTH = 0.09
DETECTOR_DEPTH = 0.33
SEGMENTER_WIDTH = 0.09
NUM_CLASSES = len(data.CLASS_NAMES)
SCORE_THRESHOLD = 0.25
IOU_THRESHOLD = 0.5


def set_determinism(seed: int) -> None:
    """Seed torch and numpy, use NUM_THREADS CPU threads and deterministic algorithms."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    torch.set_num_threads(NUM_THREADS)
    torch.use_deterministic_algorithms(True)


def flip(images: torch.Tensor, boxes: torch.Tensor, masks: torch.Tensor, rows: torch.Tensor):
    """Mirror the images (and boxes, masks) of ``rows`` left-right."""
    images, boxes, masks = images.clone(), boxes.clone(), masks.clone()
    images[rows] = images[rows].flip(-1)
    masks[rows] = masks[rows].flip(-1)
    x1 = boxes[rows, :, 0].clone()
    boxes[rows, :, 0] = data.SIZE - boxes[rows, :, 2]
    boxes[rows, :, 2] = data.SIZE - x1
    return images, boxes, masks


def assign(points, strides, boxes, labels):
    """(positive [N, A] bool, matched box [N, A, 4], matched class [N, A]) (module doc)."""
    px, py = points[:, 0].reshape(1, -1, 1), points[:, 1].reshape(1, -1, 1)
    x1, y1, x2, y2 = (boxes[..., k].unsqueeze(1) for k in range(4))
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    radius = CENTRE_RADIUS * strides.reshape(1, -1, 1)
    valid = (labels >= 0).unsqueeze(1)
    inside = (px > x1) & (px < x2) & (py > y1) & (py < y2)
    near = ((px - cx).abs() < radius) & ((py - cy).abs() < radius)
    candidate = inside & near & valid
    area = ((x2 - x1) * (y2 - y1)).expand_as(candidate)
    area = torch.where(candidate, area, torch.full_like(area, float("inf")))
    best = area.argmin(2)
    positive = candidate.any(2)
    matched = torch.gather(boxes, 1, best.unsqueeze(-1).expand(-1, -1, 4))
    classes = torch.gather(labels, 1, best)
    return positive, matched, classes


def giou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Generalized IoU of matching rows of xyxy boxes."""
    inter_wh = (torch.min(a[:, 2:], b[:, 2:]) - torch.max(a[:, :2], b[:, :2])).clamp(min=0)
    inter = inter_wh[:, 0] * inter_wh[:, 1]
    area_a = (a[:, 2:] - a[:, :2]).clamp(min=0).prod(1)
    area_b = (b[:, 2:] - b[:, :2]).clamp(min=0).prod(1)
    union = area_a + area_b - inter + 1e-7
    hull_wh = torch.max(a[:, 2:], b[:, 2:]) - torch.min(a[:, :2], b[:, :2])
    hull = hull_wh[:, 0] * hull_wh[:, 1] + 1e-7
    return inter / union - (hull - union) / hull


def detector_loss(model: nets.ShapesDetector, images, boxes, labels) -> torch.Tensor:
    """Class BCE + box (1 - GIoU + L1 in strides) loss of one batch (module doc)."""
    distances, logits = model.raw(images)
    positive, matched, classes = assign(model.points, model.strides, boxes, labels)
    target = torch.zeros_like(logits)
    target[positive] = F.one_hot(classes[positive], NUM_CLASSES).float()
    count = max(int(positive.sum()), 1)
    class_loss = F.binary_cross_entropy_with_logits(logits, target, reduction="sum") / count
    if not positive.any():
        return class_loss
    points = model.points.unsqueeze(0).expand(len(images), -1, -1)[positive]
    strides = model.strides.unsqueeze(0).expand(len(images), -1)[positive].unsqueeze(1)
    predicted = nets.ShapesDetector.to_xyxy(points, distances[positive])
    wanted = matched[positive]
    wanted_distances = torch.cat((points - wanted[:, :2], wanted[:, 2:] - points), 1)
    box_loss = (1 - giou(predicted, wanted)).mean()
    l1 = ((distances[positive] - wanted_distances).abs() / strides).mean()
    return class_loss + 2.0 * box_loss + 0.5 * l1


def train(
    model: nn.Module, split: data.ShapesSplit, epochs: int, lr: float, kind: str
) -> tuple[float, float]:
    """Train ``model`` in place with AdamW + one-cycle LR, batch 32, random horizontal flips;
    return (wall seconds, process CPU seconds) of the training loop."""
    generator = torch.Generator().manual_seed(SEED)
    images = torch.from_numpy(split.images)
    boxes = torch.from_numpy(split.boxes)
    labels = torch.from_numpy(split.box_labels)
    masks = torch.from_numpy(split.masks)
    batch = 32
    steps = epochs * ((len(images) + batch - 1) // batch)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps)
    model.to(memory_format=torch.channels_last).train()
    start = time.perf_counter()
    cpu_start = time.process_time()
    for epoch in range(epochs):
        order = torch.randperm(len(images), generator=generator)
        total = 0.0
        for first in range(0, len(images), batch):
            rows = order[first : first + batch]
            flips = torch.rand(len(rows), generator=generator) < 0.5
            x, b, m = flip(images[rows], boxes[rows], masks[rows], flips)
            x = x.contiguous(memory_format=torch.channels_last)
            if kind == "detect":
                loss = detector_loss(model, x, b, labels[rows])
            else:
                loss = F.cross_entropy(model(x), m)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += float(loss.detach()) * len(rows)
        print(
            f"  [{kind}] epoch {epoch + 1:2d}/{epochs}  loss {total / len(images):.4f}"
            f"  {time.perf_counter() - start:6.1f}s",
            flush=True,
        )
    model.to(memory_format=torch.contiguous_format).eval()
    cpu = time.process_time() - cpu_start
    print(f"  [{kind}] CPU time {cpu:.1f}s", flush=True)
    return time.perf_counter() - start, cpu


def export_onnx(model: nn.Module, path: Path, output_name: str, props: dict[str, str]) -> None:
    """TorchScript export (opset OPSET, dynamic batch), metadata props, full check."""
    example = torch.zeros(2, 3, data.SIZE, data.SIZE)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example,),
            str(path),
            dynamo=False,
            opset_version=OPSET,
            input_names=[INPUT_NAME],
            output_names=[output_name],
            dynamic_axes={INPUT_NAME: {0: "batch"}, output_name: {0: "batch"}},
            do_constant_folding=True,
            training=torch.onnx.TrainingMode.EVAL,
        )
    proto = onnx.load(str(path))
    onnx.helper.set_model_props(proto, props)
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, str(path))


def onnx_outputs(path: Path, images: np.ndarray) -> list[np.ndarray]:
    """All outputs of the ONNX model at ``path`` on ``images`` (onnxruntime CPU)."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {INPUT_NAME: images})


def measure_detector(path: Path, split: data.ShapesSplit) -> dict[str, float]:
    """mAP@0.5, mAP@0.5:0.95 and F1 of the exported detector (onnxprune's task metrics)."""
    from onnxprune.evaluate.tasks import TaskSpec, task_values

    spec = TaskSpec("detect", "yolov8", score_threshold=SCORE_THRESHOLD, nms_iou=IOU_THRESHOLD)
    targets = {"boxes": split.boxes, "box_labels": split.box_labels}
    return task_values(spec, onnx_outputs(path, split.images), targets)


def measure_segmenter(path: Path, split: data.ShapesSplit) -> dict[str, float]:
    """mIoU and pixel accuracy of the exported segmenter (onnxprune's task metrics)."""
    from onnxprune.evaluate.tasks import TaskSpec, task_values

    spec = TaskSpec("segment", "logits")
    return task_values(spec, onnx_outputs(path, split.images), {"masks": split.masks})


def write_split(split: data.ShapesSplit, path: Path) -> None:
    """``images`` float32 [N,3,64,64], ``boxes``, ``box_labels``, ``masks`` (uint8)."""
    arrays = split.arrays(INPUT_NAME)
    arrays["masks"] = arrays["masks"].astype(np.uint8)
    np.savez_compressed(path, **arrays)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out-dir", type=Path, default=ARTIFACT_DIR)
    parser.add_argument(
        "--models", nargs="+", choices=("detector", "segmenter"), default=["detector", "segmenter"]
    )
    parser.add_argument("--detector-epochs", type=int, default=12)
    parser.add_argument("--segmenter-epochs", type=int, default=8)
    parser.add_argument("--train-size", type=int, default=TRAIN_SIZE)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Regenerate the artifacts; prints progress and the final metrics."""
    args = _parser().parse_args(argv)
    out: Path = args.out_dir
    out.mkdir(parents=True, exist_ok=True)
    set_determinism(SEED)
    train_split = data.generate(args.train_size, SEED)
    test_split = data.generate(TEST_SIZE, SEED + 1)
    calib_split = data.generate(CALIB_SIZE, SEED + 2)
    write_split(test_split, out / "shapes_test.npz")
    write_split(calib_split, out / "shapes_calib.npz")
    metrics_path = out / "metrics.json"
    metrics: dict[str, Any] = (
        json.loads(metrics_path.read_text()) if metrics_path.exists() else {"models": {}}
    )
    metrics["data"] = {
        "generator": "models.shapes.data.generate",
        "train": {"n": args.train_size, "seed": SEED},
        "test": {"file": "shapes_test.npz", "n": TEST_SIZE, "seed": SEED + 1},
        "calib": {"file": "shapes_calib.npz", "n": CALIB_SIZE, "seed": SEED + 2},
        "classes": list(data.CLASS_NAMES),
    }
    if "detector" in args.models:
        set_determinism(SEED)
        model = nets.ShapesDetector(NUM_CLASSES, data.SIZE, DETECTOR_WIDTH, DETECTOR_DEPTH)
        seconds, cpu_seconds = train(model, train_split, args.detector_epochs, 4e-3, "detect")
        path = out / "shapes_detector.onnx"
        export_onnx(model, path, "output0", {"task": "detect", "decoder": "yolov8"})
        values = measure_detector(path, test_split)
        print(f"detector: {seconds:.0f}s, {values}", flush=True)
        metrics["models"]["shapes_detector"] = {
            "file": path.name,
            "task": "detect",
            "decoder": "yolov8",
            "width": DETECTOR_WIDTH,
            "depth": DETECTOR_DEPTH,
            "epochs": args.detector_epochs,
            "training_seconds": round(seconds, 1),
            "training_cpu_seconds": round(cpu_seconds, 1),
            "test": values,
            "score_threshold": SCORE_THRESHOLD,
            "iou_threshold": IOU_THRESHOLD,
        }
    if "segmenter" in args.models:
        set_determinism(SEED)
        model = nets.build_segmenter(NUM_CLASSES + 1, SEGMENTER_WIDTH)
        seconds, cpu_seconds = train(model, train_split, args.segmenter_epochs, 4e-3, "segment")
        path = out / "shapes_segmenter.onnx"
        export_onnx(model, path, "logits", {"task": "segment", "decoder": "logits"})
        values = measure_segmenter(path, test_split)
        print(f"segmenter: {seconds:.0f}s, {values}", flush=True)
        metrics["models"]["shapes_segmenter"] = {
            "file": path.name,
            "task": "segment",
            "decoder": "logits",
            "width": SEGMENTER_WIDTH,
            "epochs": args.segmenter_epochs,
            "training_seconds": round(seconds, 1),
            "training_cpu_seconds": round(cpu_seconds, 1),
            "test": values,
        }
    metrics["environment"] = {
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": ort.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "threads": NUM_THREADS,
    }
    metrics_path.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
