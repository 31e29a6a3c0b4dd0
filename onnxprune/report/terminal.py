"""Terminal summary of an optimize report (a rich table), and the rows shared with HTML."""

from __future__ import annotations

from onnxprune.report.schema import Report


def _ratio(before, after) -> str:
    if before in (None, 0) or after is None:
        return "-"
    return f"{after / before:.3f}"


def _interval(bounds) -> str:
    """`` (low–high)``: the 95 % interval of a latency ratio, when measured."""
    if not bounds or any(bound is None for bound in bounds):
        return ""
    return f" ({bounds[0]:.2f}–{bounds[1]:.2f})"


def _size(count: int) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(count) >= scale:
            return f"{count / scale:.2f}{unit}"
    return str(count)


def _bytes(count: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= scale:
            return f"{count / scale:.2f} {unit}"
    return f"{count} B"


def summary_rows(report: Report) -> list[list[str]]:
    """[name, before, after, ratio-or-change] rows: MACs, params, file size, latency p50,
    metric, groups pruned."""
    rows = [
        [
            "MACs",
            _size(report.macs_before),
            _size(report.macs_after),
            _ratio(report.macs_before, report.macs_after),
        ],
        [
            "params",
            _size(report.params_before),
            _size(report.params_after),
            _ratio(report.params_before, report.params_after),
        ],
        [
            "file size",
            _bytes(report.file_bytes_before),
            _bytes(report.file_bytes_after),
            _ratio(report.file_bytes_before, report.file_bytes_after),
        ],
    ]
    if report.latency_ms_before is not None:
        rows.append(
            [
                f"latency p50 ({report.provider})",
                f"{report.latency_ms_before:.3f} ms",
                "-" if report.latency_ms_after is None else f"{report.latency_ms_after:.3f} ms",
                _ratio(report.latency_ms_before, report.latency_ms_after)
                + _interval((report.latency or {}).get("ratio_p50_interval")),
            ]
        )
    if report.metric_before is not None:
        way = "drop" if (report.guard or {}).get("higher_is_better", True) else "rise"
        drop = "-" if report.metric_drop is None else f"{way} {_number(report.metric_drop)}"
        rows.append(
            [
                report.metric_name,
                _number(report.metric_before),
                "-" if report.metric_after is None else _number(report.metric_after),
                drop,
            ]
        )
    if report.task:
        from onnxprune.report.task import task_rows

        rows += task_rows(report.task)
    prunable = sum(1 for g in report.groups if not g.blocked and g.channels_before > g.width)
    rows.append(["groups pruned", str(prunable), str(report.groups_pruned), ""])
    return rows


def _number(value: float) -> str:
    """Two decimals from 0.1 up (points, %), four significant digits below (nats, cosine)."""
    return f"{value:.2f}" if abs(value) >= 0.1 or value == 0 else f"{value:.4g}"


MAX_SPARSITY_ROWS = 20


def sparsity_rows(report: Report) -> list[list[str]]:
    """Per-layer weight sparsity of a run with weight masks (``plan.sparsity.per_layer``):
    [layer, op, weights, before %, after %] for the layers whose sparsity changed, largest
    first (at most MAX_SPARSITY_ROWS), then the total over all weight layers."""
    summary = (report.plan or {}).get("sparsity") or {}
    layers = summary.get("per_layer") or []
    changed = sorted(
        (row for row in layers if row["after"] != row["before"]), key=lambda row: -row["weights"]
    )
    rows = [
        [
            row["node"],
            row["op_type"],
            _size(row["weights"]),
            f"{100 * row['before']:.1f}",
            f"{100 * row['after']:.1f}",
        ]
        for row in changed[:MAX_SPARSITY_ROWS]
    ]
    if len(changed) > MAX_SPARSITY_ROWS:
        rows.append([f"... {len(changed) - MAX_SPARSITY_ROWS} more layers", "", "", "", ""])
    if layers:
        total = sum(row["weights"] for row in layers)
        rows.append(
            [
                f"all {len(layers)} weight layers",
                "",
                _size(total),
                f"{100 * summary.get('sparsity_before', 0.0):.1f}",
                f"{100 * summary.get('sparsity_after', 0.0):.1f}",
            ]
        )
    return rows


def search_rows(report: Report, words=None) -> list[list[str]]:
    """One row per scheme of a search (``report.search``): [#, scheme, status, metric, loss,
    distance, MACs %, s], the scheme by the keys its space varies; the written scheme's number
    carries a ``*``; ``words`` rewrites why a scheme did not run (as the reason,
    :func:`print_summary`). Empty without a search."""
    search = report.search or {}
    keys = list(search.get("space") or {})
    rows = []
    for row in search.get("schemes", []):
        given = " ".join(f"{key}={row['scheme'].get(key)}" for key in keys)
        status = row["status"].replace("_", " ")
        if row.get("error"):
            status += f": {words(row['error']) if words else row['error']}"
        marker = "*" if row["index"] == search.get("chosen") else ""
        rows.append(
            [
                f"{row['index'] + 1}{marker}",
                given,
                status,
                "-" if row["metric_after"] is None else f"{row['metric_after']:.4g}",
                "-" if row["metric_drop"] is None else f"{row['metric_drop']:.3g}",
                "-" if row.get("distance") is None else f"{row['distance']:.3g}",
                _kept_or_zeros(row, report.target_kind == "sparsity"),
                f"{row['seconds']:.0f}",
            ]
        )
    return rows


SEARCH_COLUMNS = ["#", "scheme", "status", "metric", "loss", "distance", "MACs %", "s"]


def search_columns(report: Report) -> list[str]:
    """The search table's header: ``zeros %`` instead of ``MACs %`` for a sparsity target."""
    if report.target_kind == "sparsity":
        return [("zeros %" if c == "MACs %" else c) for c in SEARCH_COLUMNS]
    return list(SEARCH_COLUMNS)


def _kept_or_zeros(row: dict, sparsity: bool) -> str:
    """MACs kept (% of the original), or for a sparsity target the zero share (%)."""
    value = row.get("sparsity") if sparsity else row.get("macs_ratio")
    return "-" if value is None else f"{100 * value:.1f}"


def print_summary(report: Report, console=None, words=None) -> None:
    """Print the before/after table, the status line and the steps count; ``words`` rewrites
    the reason for the caller's audience (the CLI passes :func:`onnxprune.errors.cli_words`)."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    table = Table(title=f"onnxprune optimize ({report.target})")
    for column in ("", "before", "after", "ratio"):
        table.add_column(column, justify="left" if not column else "right")
    for row in summary_rows(report):
        table.add_row(*row)
    console.print(table)
    layers = sparsity_rows(report)
    if layers:
        sparsity = Table(title="weight sparsity per layer (% zeros)")
        for column in ("layer", "op", "weights", "before", "after"):
            sparsity.add_column(column, justify="left" if column in ("layer", "op") else "right")
        for row in layers:
            sparsity.add_row(*row)
        console.print(sparsity)
    searched = search_rows(report, words)
    if searched:
        schemes = Table(title="schemes searched (* = written)")
        for column in search_columns(report):
            schemes.add_column(
                column, justify="left" if column in ("scheme", "status") else "right"
            )
        for row in searched:
            schemes.add_row(*row)
        console.print(schemes)
        console.print(f"note: {(report.search or {}).get('selection', '')}", highlight=False)
    kept = sum(1 for s in report.steps if s.status == "kept")
    console.print(
        f"steps: {kept} kept, {len(report.steps) - kept} rolled back; "
        f"{report.groups_protected} group(s) protected by the guard"
    )
    guard = report.guard
    if guard:
        way = "drop" if guard.get("higher_is_better", True) else "rise"
        unit = guard.get("unit") or ""
        noise = guard.get("noise", {})
        console.print(
            f"guard: {guard['metric']} {way} <= {guard['threshold']:.4g} {unit} "
            f"({guard['max_drop_source']}; noise floor {noise.get('floor', 0):.4g}: the "
            f"original under {100 * noise.get('sigma', 0):g}% input noise, "
            f"{noise.get('samples', 0)} samples)",
            highlight=False,
        )
    if not report.accuracy_measured:
        console.print(
            "[yellow]warning:[/] accuracy was not measured (no labelled data): the guard "
            "compared outputs with the original model's; measure accuracy with "
            "'onnxprune validate ORIGINAL PRUNED --data LABELLED.npz'"
        )
    for note in report.notes:
        if note.startswith("SLOWER"):
            console.print(f"[red]warning:[/] {note}", highlight=False)
    if report.status != "ok":
        reason = words(report.reason) if words and report.reason else report.reason
        console.print(f"[red]{report.status}[/]: {reason}", highlight=False)
    if report.output_model:
        console.print(f"wrote {report.output_model}")
