"""Sensitivity plot: metric drop against the share of a group's channels removed.

One line per measured group; the ``highlight`` most sensitive groups (by mean drop) are drawn
in colour with a legend, the others as thin grey lines. Matplotlib with the Agg backend.
"""

from __future__ import annotations

import io
from pathlib import Path

from onnxprune.sensitivity.table import SensitivityTable


def sensitivity_plot(table: SensitivityTable, highlight: int = 5) -> bytes:
    """PNG bytes of the plot (module docstring)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.0, 4.2), dpi=100)
    axes = figure.add_subplot()
    ranked = table.ranked()
    top = {g.index for g in ranked[:highlight]}
    for group in reversed(ranked):  # the most sensitive drawn last, on top
        ratios = [0.0] + [p.removed / group.size for p in group.points]
        drops = [0.0] + [p.drop for p in group.points]
        if group.index in top:
            axes.plot(ratios, drops, marker="o", linewidth=2.0, label=group.name[-40:])
        else:
            axes.plot(ratios, drops, color="#b0b0b0", linewidth=0.8)
    axes.set_xlabel("share of the group's channels removed")
    axes.set_ylabel(f"drop ({table.metric})")
    axes.set_title(f"Sensitivity per group ({table.criterion}, {table.samples} samples)")
    axes.grid(alpha=0.3)
    if top:
        handles, labels = axes.get_legend_handles_labels()
        axes.legend(handles[::-1], labels[::-1], fontsize=7, title="most sensitive")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()


def write_sensitivity_plot(table: SensitivityTable, path: str | Path, highlight: int = 5) -> Path:
    """Write :func:`sensitivity_plot` to ``path``."""
    from onnxprune.errors import InputError

    path = Path(path)
    try:
        path.write_bytes(sensitivity_plot(table, highlight))
    except OSError as error:
        raise InputError(f"cannot write plot '{path}': {error.strerror or error}") from None
    return path
