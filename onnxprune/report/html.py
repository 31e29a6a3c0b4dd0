"""Self-contained HTML report: summary, plots as embedded PNGs, steps and groups tables.

The page has no external resource (inline CSS, ``data:image/png;base64`` images) so it can be
attached to a CI run or mailed as one file.
"""

from __future__ import annotations

import os
from html import escape
from pathlib import Path

from onnxprune.errors import InputError
from onnxprune.report.plots import (
    metric_vs_macs_plot,
    png_data_uri,
    search_plot,
    sparsity_plot,
    widths_plot,
)
from onnxprune.report.schema import Report
from onnxprune.report.task import task_html
from onnxprune.report.terminal import search_columns, search_rows, sparsity_rows, summary_rows

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2em auto;max-width:70em;
color:#222;padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em}
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:right}
th:first-child,td:first-child{text-align:left}
tr.rolled_back td{color:#a33}
.status-ok{color:#1e7b34}.status-bad{color:#a33}
img{max-width:100%;border:1px solid #eee}
code{background:#f4f4f4;padding:0 .2em}
"""


def render_html(report: Report) -> str:
    """The report as one HTML document."""
    status_class = "status-ok" if report.status == "ok" else "status-bad"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>onnxprune optimize: {escape(report.input_model or 'model')}</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>onnxprune optimize</h1>",
        f"<p>Model <code>{escape(str(report.input_model))}</code> &rarr; "
        f"<code>{escape(str(report.output_model))}</code>, target <code>"
        f"{escape(report.target)}</code>, metric <code>{escape(report.metric_name)}</code> "
        f"(guard: loss &le; {report.max_drop:.4g}). Status: "
        f'<b class="{status_class}">{escape(report.status)}</b>'
        + (f" &mdash; {escape(report.reason)}" if report.reason else "")
        + "</p>",
        "<h2>Before / after</h2>",
        _table(["", "before", "after", "ratio"], summary_rows(report)),
        task_html(report.task, report.task_grid_png) if report.task else "",
        "<h2>Metric vs MACs over the steps</h2>",
        f'<img alt="metric vs MACs" src="{png_data_uri(metric_vs_macs_plot(report))}">',
        *_sparsity_section(report),
        *_search_section(report),
        "<h2>Channels per group</h2>",
        f'<img alt="channels per group" src="{png_data_uri(widths_plot(report))}">',
        "<h2>Steps</h2>",
        _steps_table(report),
        "<h2>Groups</h2>",
        _groups_table(report),
    ]
    if not report.accuracy_measured:
        parts.append("<p><b>Accuracy was not measured</b> (no data given: synthetic inputs).</p>")
    if report.notes:
        parts.append("<h2>Notes</h2><ul>")
        parts += [f"<li>{escape(note)}</li>" for note in report.notes]
        parts.append("</ul>")
    parts.append(
        f"<p><small>onnxprune {escape(report.tool_version)}, report schema "
        f"v{report.schema_version}</small></p></body></html>"
    )
    return "\n".join(parts)


def _sparsity_section(report: Report) -> list[str]:
    """Per-layer weight sparsity (chart and table) of a run with weight masks, else nothing."""
    rows = sparsity_rows(report)
    if not rows:
        return []
    return [
        "<h2>Weight sparsity per layer</h2>",
        f'<img alt="weight sparsity per layer" src="{png_data_uri(sparsity_plot(report))}">',
        _table(["layer", "op", "weights", "zeros before %", "zeros after %"], rows),
    ]


def _search_section(report: Report) -> list[str]:
    """The schemes a search ran (chart and table), else nothing."""
    rows = search_rows(report)
    if not rows:
        return []
    return [
        "<h2>Schemes searched</h2>",
        f"<p>{escape(str((report.search or {}).get('selection', '')))}</p>",
        f'<img alt="schemes searched" src="{png_data_uri(search_plot(report))}">',
        _table(search_columns(report), rows),
    ]


def _table(header: list[str], rows: list[list[str]], row_classes: list[str] | None = None) -> str:
    lines = ["<table><thead><tr>"]
    lines += [f"<th>{escape(h)}</th>" for h in header]
    lines.append("</tr></thead><tbody>")
    for position, row in enumerate(rows):
        css = f' class="{row_classes[position]}"' if row_classes else ""
        lines.append(f"<tr{css}>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>")
    lines.append("</tbody></table>")
    return "".join(lines)


def _fmt(value, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def _steps_table(report: Report) -> str:
    base = max(report.macs_before, 1)
    rows = [
        [
            str(s.index),
            f"{s.step}.{s.attempt}",
            s.kind,
            s.status.replace("_", " "),
            f"{100 * s.macs / base:.1f}%",
            _fmt(s.metric),
            _fmt(s.drop),
            str(s.removed_clusters),
            s.reason or "",
        ]
        for s in report.steps
    ]
    header = ["#", "step", "kind", "status", "MACs", "metric", "drop", "clusters", "note"]
    return _table(header, rows, [s.status for s in report.steps])


def _groups_table(report: Report) -> str:
    rows = [
        [
            g.name,
            str(g.channels_before),
            str(g.channels_after),
            "blocked" if g.blocked else ("protected" if g.protected else ""),
        ]
        for g in report.groups
        if g.channels_before > g.width or g.channels_after != g.channels_before
    ]
    return _table(["group", "before", "after", ""], rows)


def write_html(report: Report, path: str | os.PathLike) -> Path:
    """Render and write the HTML report (InputError when the file cannot be written)."""
    target = Path(path)
    try:
        target.write_text(render_html(report), encoding="utf-8")
    except OSError as error:
        raise InputError(f"cannot write report '{target}': {error.strerror or error}") from None
    return target
