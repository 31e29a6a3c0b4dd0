"""Time of class-aware NMS (``evaluate.detection.nms``: classes apart, blocks of IoU matrices)
against the one-box-at-a-time greedy loop it replaced, in the same process, on the same
candidates; both must keep the same boxes.

Cases: YOLOv8-style raw candidates at 640×640 (8,400 boxes, 80 classes, and the same boxes all
of one class), and a small decoded image (300 boxes, 3 classes) as the guard decodes many.

    python tools/bench_nms.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from onnxprune.evaluate.detection import Detections, box_iou, nms  # noqa: E402


def one_at_a_time(detections: Detections, threshold: float) -> Detections:
    """The loop ``nms`` replaced: keep the best box left, drop the boxes of its class that it
    overlaps with IoU > threshold, repeat."""
    order = np.argsort(-detections.scores, kind="stable")
    boxes, labels = detections.boxes[order], detections.labels[order]
    remaining = np.arange(len(order))
    kept: list[int] = []
    while remaining.size:
        best, rest = remaining[0], remaining[1:]
        kept.append(int(best))
        overlap = box_iou(boxes[best], boxes[rest])[0]
        remaining = rest[(overlap <= threshold) | (labels[rest] != labels[best])]
    return detections.select(order[np.asarray(kept, dtype=np.int64)])


def cases(rng: np.random.Generator) -> dict[str, tuple[Detections, float]]:
    def random_boxes(count: int, extent: float, side: tuple[float, float]) -> np.ndarray:
        corners = rng.uniform(0, extent, (count, 2))
        return np.concatenate([corners, corners + rng.uniform(*side, (count, 2))], axis=1)

    raw = random_boxes(8400, 640, (5, 80))
    scores = rng.uniform(0, 1, 8400)
    small = random_boxes(300, 96, (4, 30))
    return {
        "8,400 boxes, 80 classes, IoU 0.7": (
            Detections(raw, scores, rng.integers(0, 80, 8400)),
            0.7,
        ),
        "8,400 boxes, 1 class, IoU 0.5": (Detections(raw, scores, np.zeros(8400, int)), 0.5),
        "300 boxes, 3 classes, IoU 0.5": (
            Detections(small, rng.uniform(0, 1, 300), rng.integers(0, 3, 300)),
            0.5,
        ),
    }


def timed(function, detections: Detections, threshold: float, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function(detections, threshold)
        times.append(time.perf_counter() - start)
    return times


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    print("| case | kept | greedy loop ms (median) | nms ms (median) | ratio |")
    print("|---|---|---|---|---|")
    for name, (detections, threshold) in cases(np.random.default_rng(0)).items():
        new, old = nms(detections, threshold), one_at_a_time(detections, threshold)
        if new.boxes.tolist() != old.boxes.tolist() or new.labels.tolist() != old.labels.tolist():
            raise SystemExit(f"{name}: nms and the greedy loop keep different boxes")
        old_ms = 1e3 * statistics.median(timed(one_at_a_time, detections, threshold, args.repeats))
        new_ms = 1e3 * statistics.median(timed(nms, detections, threshold, args.repeats))
        print(f"| {name} | {len(new)} | {old_ms:.1f} | {new_ms:.1f} | {new_ms / old_ms:.3f} |")


if __name__ == "__main__":
    main()
