"""``onnxprune prune``: structured channel pruning at a fixed ratio."""

from __future__ import annotations

import json
from pathlib import Path

import click

from onnxprune import defaults
from onnxprune.cli.options import attention_unit_option, input_shape_option
from onnxprune.errors import InputError, cli_words
from onnxprune.option_text import parse_input_shapes, parse_ratio_for


def default_output(model: str) -> Path:
    path = Path(model)
    return path.with_name(path.name.removesuffix(".onnx") + ".pruned.onnx")


def print_plan(plan, out_path: Path | None, console=None) -> None:
    """Before/after table of a pruning plan."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = console or Console()
    table = Table(title="onnxprune: before / after", show_lines=False)
    for column in ("", "before", "after", "ratio"):
        table.add_column(column, justify="right" if column else "left")

    def row(name, before, after, fmt="{:,}"):
        ratio = f"{after / before:.3f}" if before else "-"
        table.add_row(name, fmt.format(before), fmt.format(after), ratio)

    row("MACs", plan.macs_before, plan.macs_after)
    row("params", plan.params_before, plan.params_after)
    console.print(table)
    prunable = sum(1 for g in plan.groups if g.clusters > 1 and not g.blocked)
    console.print(
        f"groups: {len(plan.groups)} total, {prunable} prunable, {plan.groups_pruned} pruned, "
        f"{plan.groups_blocked} blocked; prunable MAC share "
        f"{plan.prunable_macs / max(plan.macs_before, 1):.1%}"
    )
    for warning in plan.warnings:
        console.print(f"[yellow]warning:[/] {escape(cli_words(warning))}", highlight=False)
    for note in plan.data_notes:  # how --data was read (pixel scale, crops, normalization)
        console.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
    if not plan.groups_pruned:
        for note in plan.notes:  # why nothing could be pruned
            if note not in plan.data_notes:
                console.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
    if out_path is not None:
        console.print(f"wrote {out_path}")
        console.print(
            "[yellow]note:[/] accuracy was not measured (prune has no accuracy guard); measure it "
            f"with 'onnxprune validate MODEL {out_path} --data DATA.npz', or prune under an "
            "accuracy guard with 'onnxprune optimize MODEL --data DATA.npz'",
            highlight=False,
        )


@click.command("prune")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    help="Output model (default MODEL.pruned.onnx).",
)
@click.option(
    "--ratio",
    type=float,
    default=0.3,
    show_default=True,
    help="Share of channels removed per group.",
)
@click.option(
    "--criterion",
    default=defaults.DATA_FREE_CRITERION,
    show_default=True,
    help="l1, l2, bn, random or a registered name.",
)
@click.option(
    "--data",
    metavar="PATH",
    help="Calibration data (.npz or image folder) for data-driven criteria (obs, activation, "
    "taylor, fisher).",
)
@click.option(
    "--allow-norm-stats/--no-allow-norm-stats",
    default=None,
    help="Prune channel groups that feed LayerNorm/GroupNorm statistics (not mask-equivalent). "
    "Default: on with --data, off without.",
)
@click.option(
    "--allow-output-change",
    is_flag=True,
    help="Let a graph output's width follow the pruning (e.g. an encoder's hidden size).",
)
@attention_unit_option()
@click.option("--global", "global_ranking", is_flag=True, help="Rank channels across all groups.")
@click.option(
    "--max-ratio",
    type=float,
    default=defaults.MAX_RATIO,
    show_default=True,
    help="Per-group cap with --global.",
)
@click.option(
    "--round-to",
    type=int,
    default=None,
    help="Kept channel counts are multiples of N (default: the CPU provider's channel block, "
    "as optimize: 16 on AVX-512, 8 on AVX2; 1 = any count).",
)
@click.option(
    "--ignore", multiple=True, metavar="GLOB", help="Protect layers whose name matches. Repeatable."
)
@click.option("--ratio-for", multiple=True, metavar="GLOB=R", help="Per-layer ratio. Repeatable.")
@click.option(
    "--blocks",
    type=int,
    default=None,
    metavar="N",
    help="Instead of channels, remove the N lowest-scored residual units (inspect --blocks).",
)
@click.option(
    "--blocks-data", type=click.Path(dir_okay=False), help="Calibration .npz for --blocks."
)
@click.option("--blocks-criterion", help="influence, drop (need data), norm_ratio (data-free).")
@click.option("--blocks-refit", is_flag=True, help="Refit the layers after removed units (lsq).")
@input_shape_option
@click.option("--force", is_flag=True, help="Overwrite an existing output file.")
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False),
    help="Write the plan as JSON ('-' = stdout).",
)
@click.option("--quiet", is_flag=True, help="Print nothing but errors.")
def command(
    model,
    output,
    ratio,
    criterion,
    data,
    allow_norm_stats,
    allow_output_change,
    attention_unit,
    global_ranking,
    max_ratio,
    round_to,
    ignore,
    ratio_for,
    blocks,
    blocks_data,
    blocks_criterion,
    blocks_refit,
    input_shapes,
    force,
    json_path,
    quiet,
) -> None:
    """Remove a share of the channels of MODEL and write the pruned model."""
    from onnxprune.prune import prune

    out_path = Path(output) if output else default_output(model)
    if out_path.exists() and not force:
        raise InputError(f"output '{out_path}' exists (use --force to overwrite)")
    if blocks is not None:
        from onnxprune.blocks.command import run_prune_blocks

        shapes = parse_input_shapes(input_shapes)
        return run_prune_blocks(
            model,
            out_path,
            blocks,
            input_shapes=shapes,
            force=force,
            json_path=json_path,
            quiet=quiet,
            data=blocks_data,
            criterion=blocks_criterion,
            refit=blocks_refit,
        )
    result = prune(
        model,
        ratio=ratio,
        criterion=criterion,
        global_ranking=global_ranking,
        max_ratio=max_ratio,
        round_to=round_to,
        ignore=list(ignore),
        ratio_for=parse_ratio_for(ratio_for),
        input_shapes=parse_input_shapes(input_shapes),
        data=data,
        allow_norm_stats=allow_norm_stats,
        allow_output_change=allow_output_change,
        attention_unit=attention_unit,
    )
    result.save(out_path, force=force, input_path=model)
    if json_path:
        text = json.dumps(result.plan.to_dict(), indent=2, default=str)
        if json_path == "-":
            click.echo(text)
        else:
            Path(json_path).write_text(text)
    if not quiet and json_path != "-":
        print_plan(result.plan, out_path)
