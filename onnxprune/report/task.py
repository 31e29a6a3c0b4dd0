"""Detection / segmentation section of the optimize report.

:func:`task_summary` measures every task metric the evaluation data allows on the original and
the pruned model (``after`` also has the ``*_vs_original`` values: the pruned model against
the original's own predictions) and draws an image grid: the first ``GRID_IMAGES`` evaluation
images, the original's predictions on the top row and the pruned model's below (boxes with
class and score for detection, a coloured label map blended over the image for
segmentation). The summary is a plain dict (the report's optional ``task`` key); the grid is
a PNG kept out of the JSON and embedded in the HTML page.
"""

from __future__ import annotations

from html import escape
from typing import Any

import numpy as np

GRID_IMAGES = 6
BOX_COLOURS = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6")


def task_summary(spec, original_outputs, pruned_outputs, targets: dict | None) -> dict[str, Any]:
    """``{"task", "decoder", "spec", "before", "after"}`` (see module doc)."""
    from onnxprune.evaluate.tasks import task_values

    before = task_values(spec, original_outputs, targets)
    after = task_values(spec, pruned_outputs, targets, reference=original_outputs)
    return {
        "task": spec.task,
        "decoder": spec.decoder,
        "spec": spec.to_dict(),
        "before": before,
        "after": after,
    }


def task_rows(summary: dict[str, Any]) -> list[list[str]]:
    """[metric, before, after, change] rows for the terminal and HTML tables."""
    rows = []
    for name, after in summary["after"].items():
        before = summary["before"].get(name)
        if before is None and name.endswith("_vs_original"):
            before = 100.0  # the original against itself
        change = "" if before is None else f"{after - before:+.2f}"
        rows.append([name, "-" if before is None else f"{before:.2f}", f"{after:.2f}", change])
    return rows


def _display(image: np.ndarray) -> np.ndarray:
    """An input sample (CHW or HWC) as an HWC float image in [0, 1] (min-max scaled)."""
    image = np.asarray(image, dtype=np.float64)
    if image.ndim == 3 and image.shape[0] in (1, 3, 4):
        image = image.transpose(1, 2, 0)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    low, high = float(image.min()), float(image.max())
    return (image - low) / (high - low) if high > low else np.zeros_like(image)


def grid_png(spec, images: np.ndarray, original_outputs, pruned_outputs) -> bytes:
    """PNG of up to GRID_IMAGES images: original predictions on top, pruned below."""
    from onnxprune.evaluate.tasks import decode, resize_nearest
    from onnxprune.report.plots import _figure, _png

    count = min(GRID_IMAGES, len(images))
    decoded = [
        decode(spec, _head(original_outputs, count)),
        decode(spec, _head(pruned_outputs, count)),
    ]
    figure = _figure(2.0 * count, 4.2)
    axes = figure.subplots(2, count, squeeze=False)
    for row, (title, predictions) in enumerate(zip(("original", "pruned"), decoded, strict=True)):
        for column in range(count):
            axis = axes[row][column]
            picture = _display(images[column])
            axis.imshow(picture, cmap="gray" if picture.ndim == 2 else None)
            if spec.task == "detect":
                _draw_boxes(axis, predictions[column], spec.score_threshold)
            else:
                labels = np.asarray(predictions)[column : column + 1]
                labels = resize_nearest(labels, picture.shape[:2])[0]
                overlay = np.ma.masked_where(labels == 0, labels)
                axis.imshow(overlay, cmap="tab10", alpha=0.5, vmin=0, vmax=9)
            axis.set_xticks([])
            axis.set_yticks([])
            if column == 0:
                axis.set_ylabel(title)
    figure.subplots_adjust(left=0.04, right=0.99, top=0.98, bottom=0.02, wspace=0.05, hspace=0.05)
    return _png(figure)


def _head(outputs, count: int) -> list[np.ndarray]:
    arrays = getattr(outputs, "arrays", outputs)
    return [np.asarray(a)[:count] for a in arrays]


def _draw_boxes(axis, detections, threshold: float) -> None:
    from matplotlib.patches import Rectangle

    shown = detections.above(threshold)
    for box, score, label in zip(shown.boxes, shown.scores, shown.labels, strict=True):
        colour = BOX_COLOURS[int(label) % len(BOX_COLOURS)]
        x1, y1, x2, y2 = (float(v) for v in box)
        axis.add_patch(
            Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False, color=colour, lw=1.2)
        )
        axis.text(x1, y1 - 1, f"{int(label)}:{score:.2f}", color=colour, fontsize=6)


def task_html(summary: dict[str, Any], png: bytes | None) -> str:
    """The HTML section: the metrics table and the embedded grid."""
    from onnxprune.report.plots import png_data_uri

    header = "".join(f"<th>{escape(h)}</th>" for h in ("metric", "original", "pruned", "change"))
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>"
        for row in task_rows(summary)
    )
    parts = [
        f"<h2>Task: {escape(summary['task'])} (decoder <code>"
        f"{escape(summary['decoder'])}</code>)</h2>",
        f"<table><tr>{header}</tr>{body}</table>",
    ]
    if png:
        parts.append(
            f'<p>Top: original model; bottom: pruned model.</p><img alt="predictions" '
            f'src="{png_data_uri(png)}">'
        )
    return "\n".join(parts)
