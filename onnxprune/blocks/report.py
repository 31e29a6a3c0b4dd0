"""Human view of the residual units (``onnxprune inspect --blocks``, ``prune --blocks``)."""

from __future__ import annotations

from onnxprune.blocks.api import BlockRemoval
from onnxprune.blocks.find import BlockSearch


def print_units(search: BlockSearch, console=None) -> None:
    """A rich table of every unit (kind, nodes, MAC share, stage) and every rejected branch."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = console or Console()
    total = max(search.total_macs, 1)
    table = Table(title="residual units (y = x + f(x))")
    for column in ("#", "Add", "kind", "nodes", "MAC share", "stage / reason"):
        table.add_column(
            column, justify="right" if column in ("#", "nodes", "MAC share") else "left"
        )
    for unit in search.units:
        stage = search.stages[unit.stage] if unit.stage >= 0 else [unit.index]
        table.add_row(
            str(unit.index),
            escape(unit.add),
            unit.kind,
            str(len(unit.nodes)),
            f"{unit.macs / total:.1%}",
            f"{unit.stage} ({len(stage)} unit{'s' if len(stage) > 1 else ''})",
        )
    for rejected in search.rejected:
        table.add_row(
            "-", escape(rejected.add), "[red]not removable[/red]", "", "", escape(rejected.reason)
        )
    console.print(table)
    console.print(
        f"{len(search.units)} removable unit(s), {len(search.rejected)} not removable; "
        f"removable MAC share {search.removable_macs() / total:.1%}"
    )


def print_removal(result: BlockRemoval, out_path, console=None) -> None:
    """Removed units and before/after MACs and parameters."""
    from rich.console import Console
    from rich.markup import escape

    console = console or Console()
    names = ", ".join(result.search.units[i].add for i in result.removed) or "(none)"
    console.print(f"removed {len(result.removed)} unit(s) by {result.criterion}: {escape(names)}")
    for label, before, after in (
        ("MACs", result.macs_before, result.macs_after),
        ("params", result.params_before, result.params_after),
    ):
        ratio = f"{after / before:.3f}" if before else "-"
        console.print(f"{label}: {before:,} -> {after:,} ({ratio})")
    for note in result.notes:
        console.print(f"[yellow]note:[/yellow] {escape(note)}", highlight=False)
    if out_path is not None:
        console.print(f"wrote {out_path}")
