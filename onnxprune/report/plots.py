"""Report plots as PNG bytes (matplotlib, Agg backend: no display needed).

* :func:`widths_plot` — channels per group before (light) and after (dark) pruning;
* :func:`metric_vs_macs_plot` — the metric of every step against its MACs (% of the original),
  kept steps joined by a line, rolled-back steps as crosses, the guard as a dashed line;
* :func:`sparsity_plot` — per-layer weight sparsity before (light) and after (dark) of a run
  with weight masks;
* :func:`search_plot` — the metric of every scheme a search ran against its MACs (its zero
  share for a sparsity target), the written one ringed.
"""

from __future__ import annotations

import base64
import io

from onnxprune.report.schema import STEP_KEPT, Report

MAX_GROUPS_PLOTTED = 60
LIGHT, DARK = "#c6d4e8", "#2f5d9c"  # before, after


def _figure(width: float, height: float):
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100)


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()


def png_data_uri(png: bytes) -> str:
    """``data:image/png;base64,...`` for an ``<img src>``."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def plotted_groups(report: Report) -> list:
    """Groups shown in the widths plot: prunable ones (not blocked) in graph order, the
    widest first when there are more than :data:`MAX_GROUPS_PLOTTED`."""
    groups = [g for g in report.groups if not g.blocked and g.channels_before > g.width]
    if len(groups) > MAX_GROUPS_PLOTTED:
        keep = sorted(groups, key=lambda g: -g.channels_before)[:MAX_GROUPS_PLOTTED]
        keep_ids = {g.index for g in keep}
        groups = [g for g in groups if g.index in keep_ids]
    return groups


def _paired_bars(
    names: list[str],
    back: list[float],
    front: list[float],
    labels: tuple[str, str],
    *,
    ylabel: str,
    title: str,
    empty: str,
    colors: tuple[str, str] = (LIGHT, DARK),
):
    """(figure, axes) of a bar per name: ``back`` (light by default), ``front`` on top."""
    figure = _figure(max(6.0, 0.25 * len(names) + 2), 3.6)
    axes = figure.add_subplot()
    positions = list(range(len(names)))
    axes.bar(positions, back, color=colors[0], label=labels[0])
    axes.bar(positions, front, color=colors[1], label=labels[1])
    axes.set_xticks(positions)
    axes.set_xticklabels([_short(name) for name in names], rotation=90, fontsize=6)
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    if names:
        axes.legend(loc="upper left", fontsize=8)
    else:
        axes.text(0.5, 0.5, empty, ha="center", transform=axes.transAxes)
    return figure, axes


def widths_plot(report: Report) -> bytes:
    """Bar chart of per-group channel counts before/after (PNG bytes)."""
    groups = plotted_groups(report)
    figure, axes = _paired_bars(
        [g.name for g in groups],
        [g.channels_before for g in groups],
        [g.channels_after for g in groups],
        ("before", "after"),
        ylabel="channels",
        title="Channels per group (P = protected by the guard)",
        empty="no prunable groups",
    )
    for position, group in enumerate(groups):
        if group.protected:
            axes.annotate("P", (position, group.channels_before), ha="center", fontsize=7)
    return _png(figure)


def _guard_line(axes, report: Report) -> None:
    """The guard's threshold as a dashed line: the original's metric minus the tolerance (plus,
    for a lower-is-better metric)."""
    lower = (report.guard or {}).get("higher_is_better", True)
    sign = -1.0 if lower else 1.0
    axes.axhline(
        report.metric_before + sign * report.max_drop,
        color="#c0392b",
        linestyle="--",
        linewidth=1,
        label=f"guard ({'-' if lower else '+'}{report.max_drop:.3g})",
    )


def metric_vs_macs_plot(report: Report) -> bytes:
    """Metric against MACs over the steps, starting from the original model (PNG bytes)."""
    figure = _figure(6.0, 3.8)
    axes = figure.add_subplot()
    base = max(report.macs_before, 1)
    if report.metric_before is not None:
        kept_x, kept_y = [100.0], [report.metric_before]
        _guard_line(axes, report)
    else:
        kept_x, kept_y = [], []
    rolled_x, rolled_y = [], []
    for step in report.steps:
        if step.metric is None:
            continue
        share = 100.0 * step.macs / base
        if step.status == STEP_KEPT:
            kept_x.append(share)
            kept_y.append(step.metric)
        else:
            rolled_x.append(share)
            rolled_y.append(step.metric)
    axes.plot(kept_x, kept_y, marker="o", color="#2f5d9c", label="kept")
    if rolled_x:
        axes.scatter(rolled_x, rolled_y, marker="x", color="#c0392b", label="rolled back", zorder=3)
    if report.target_kind == "macs":
        axes.axvline(100 * report.target_value, color="#888888", linestyle=":", label="target")
    axes.invert_xaxis()
    axes.set_xlabel("MACs (% of original)")
    axes.set_ylabel(report.metric_name)
    axes.set_title(f"{report.metric_name} vs MACs over the steps")
    axes.legend(fontsize=8)
    axes.grid(alpha=0.3)
    return _png(figure)


def _short(name: str, limit: int = 28) -> str:
    return name if len(name) <= limit else "…" + name[-(limit - 1) :]


def sparsity_plot(report: Report) -> bytes:
    """Bar chart of per-layer weight sparsity (% zeros) before/after, graph order; the
    :data:`MAX_GROUPS_PLOTTED` largest layers when there are more (PNG bytes)."""
    layers = ((report.plan or {}).get("sparsity") or {}).get("per_layer") or []
    if len(layers) > MAX_GROUPS_PLOTTED:
        largest = sorted(layers, key=lambda r: -r["weights"])[:MAX_GROUPS_PLOTTED]
        keep = {row["node"] for row in largest}
        layers = [row for row in layers if row["node"] in keep]
    figure, axes = _paired_bars(
        [r["node"] for r in layers],
        [100 * r["after"] for r in layers],
        [100 * r["before"] for r in layers],
        ("after", "before"),
        ylabel="zeros (%)",
        title="Weight sparsity per layer",
        empty="no weight layers",
        colors=(DARK, LIGHT),  # before light, after dark, as in the channels plot
    )
    axes.set_ylim(0, 100)
    return _png(figure)


def search_plot(report: Report) -> bytes:
    """Each scheme of ``report.search`` at (MACs % of the original, metric), numbered as in
    the table; schemes that met the target in blue, the others red, the chosen one ringed,
    the original and the guard as lines (PNG bytes)."""
    figure = _figure(6.0, 3.8)
    axes = figure.add_subplot()
    search = report.search or {}
    sparsity = report.target_kind == "sparsity"
    for row in search.get("schemes", []):
        share = row.get("sparsity") if sparsity else row.get("macs_ratio")
        if row["metric_after"] is None or share is None:
            continue
        x, y = 100.0 * share, row["metric_after"]
        color = DARK if row["status"] == "ok" else "#c0392b"
        axes.scatter([x], [y], color=color, zorder=3)
        axes.annotate(str(row["index"] + 1), (x, y), xytext=(4, 4), textcoords="offset points")
        if row["index"] == search.get("chosen"):
            axes.scatter([x], [y], s=220, facecolors="none", edgecolors="#222222", zorder=2)
    if report.metric_before is not None:
        axes.axhline(report.metric_before, color="#888888", linewidth=1, label="original")
        _guard_line(axes, report)
        axes.legend(fontsize=8)
    if sparsity:
        axes.set_xlabel("weights zero (%)")
    else:
        axes.invert_xaxis()
        axes.set_xlabel("MACs (% of original)")
    axes.set_ylabel(report.metric_name)
    axes.set_title("schemes searched (ringed: written)")
    axes.grid(alpha=0.3)
    return _png(figure)
