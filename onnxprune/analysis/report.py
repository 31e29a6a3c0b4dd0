"""Human and JSON views of the channel groups (``onnxprune inspect --groups``)."""

from __future__ import annotations

from onnxprune.analysis.analyze import ChannelAnalysis


def describe_groups(analysis: ChannelAnalysis) -> list[dict]:
    """One dict per group: index, name, sources, clusters, width, channels, MAC share,
    prunable, blocked count and reasons, stats-coupled flag and sliced members."""
    total = max(analysis.total_macs, 1)
    return [
        {
            "index": g.index,
            "name": g.name,
            "sources": g.sources,
            "clusters": g.size,
            "width": g.width,
            "channels": g.size * g.width,
            "mac_share": g.macs / total,
            "prunable": g.prunable,
            "blocked_clusters": int(g.blocked.sum()),
            "blocked_reasons": g.reasons,
            "stats_coupled": g.stats_coupled,
            "members": g.members,
        }
        for g in analysis.groups
    ]


def print_groups(analysis: ChannelAnalysis, console=None, members: bool = False) -> None:
    """A rich table of every group, blocked ones with their first reason."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    table = Table(title="channel groups")
    for column in ("#", "group", "channels", "MAC share", "status"):
        table.add_column(
            column, justify="right" if column in ("#", "channels", "MAC share") else "left"
        )
    for row in describe_groups(analysis):
        if row["prunable"]:
            status = "prunable" + (" (norm statistics)" if row["stats_coupled"] else "")
            if row["blocked_clusters"]:
                status += f", {row['blocked_clusters']} blocked: {row['blocked_reasons'][0]}"
        else:
            reason = row["blocked_reasons"][0] if row["blocked_reasons"] else "single channel"
            status = f"[red]blocked[/red]: {reason}"
        name = row["name"] + ("\n  " + "\n  ".join(row["members"]) if members else "")
        table.add_row(
            str(row["index"]), name, f"{row['channels']}", f"{row['mac_share']:.1%}", status
        )
    console.print(table)
    prunable = sum(1 for g in analysis.groups if g.prunable)
    console.print(
        f"{len(analysis.groups)} groups, {prunable} prunable; "
        f"prunable MAC share {analysis.prunable_macs() / max(analysis.total_macs, 1):.1%}"
    )
