"""``onnxprune inspect``: what a model is, how big it is and where its compute goes.

The output is a list of sections, each a function ``(summary, console, options) -> None``
in :data:`SECTIONS`; the JSON form is ``summary.to_dict()`` extended by :data:`JSON_EXTRAS`.
A later option (e.g. ``--groups``) adds a section and a JSON key without touching the rest.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.markup import escape

from onnxprune.cli.options import attention_unit_option, input_shape_option
from onnxprune.errors import cli_words
from onnxprune.io.external_data import model_file_bytes
from onnxprune.option_text import parse_input_shapes
from onnxprune.stats.summary import ModelSummary, TensorInfo

if TYPE_CHECKING:
    from rich.console import Console


@dataclass
class InspectOptions:
    """Options every section may read; later options are added here."""

    model_path: Path
    top: int


Section = Callable[[ModelSummary, "Console", InspectOptions], None]


def human_count(value: int) -> str:
    """1234567 -> '1.23 M' (K, M, G, T; plain below 1000)."""
    for scale, unit in ((10**12, "T"), (10**9, "G"), (10**6, "M"), (10**3, "K")):
        if abs(value) >= scale:
            return f"{value / scale:.2f} {unit}"
    return str(value)


def human_bytes(value: int) -> str:
    """1536 -> '1.50 KiB'."""
    for scale, unit in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if value >= scale:
            return f"{value / scale:.2f} {unit}"
    return f"{value} B"


def _shape_text(shape) -> str:
    """Shape as text for rich tables: '[batch, 3, 224, 224]' (markup-escaped), '?' if unknown."""
    if shape is None:
        return "?"
    return escape("[" + ", ".join("?" if d is None else str(d) for d in shape) + "]")


def section_header(summary: ModelSummary, console: Console, options: InspectOptions) -> None:
    """Model file, producer, IR version, opsets, node count, params, MACs."""
    from rich.table import Table

    producer = " ".join(v for v in summary.producer.values() if v) or "(unknown)"
    opsets = ", ".join(f"{domain} {version}" for domain, version in summary.opset.items())
    shapes = ", ".join(
        f"{escape(name)}={_shape_text(s)}" for name, s in summary.input_shapes.items()
    )
    table = Table(
        show_header=False, box=None, pad_edge=False, title=escape(str(options.model_path))
    )
    table.add_column(style="bold")
    table.add_column()
    for key, value in (
        ("producer", escape(producer)),
        ("IR version", str(summary.ir_version)),
        ("opsets", escape(opsets)),
        ("file size", human_bytes(model_file_bytes(options.model_path))),
        ("nodes", f"{summary.nodes:,}"),
        ("parameters", f"{summary.params:,} ({human_count(summary.params)})"),
        ("parameter bytes", f"{summary.param_bytes:,} ({human_bytes(summary.param_bytes)})"),
        (
            "MACs",
            f"unknown ({escape(cli_words(summary.macs_unknown))})"
            if summary.macs_unknown
            else f"{summary.macs:,} ({human_count(summary.macs)}) at {shapes or 'no inputs'}",
        ),
    ):
        table.add_row(key, value)
    console.print(table)


def _io_rows(table, kind: str, tensors: list[TensorInfo]) -> None:
    for tensor in tensors:
        table.add_row(kind, escape(tensor.name), tensor.dtype, _shape_text(tensor.shape))


def section_io(summary: ModelSummary, console: Console, options: InspectOptions) -> None:
    """Inputs and outputs with dtypes and shapes (symbolic dimensions by name)."""
    from rich.table import Table

    table = Table(title="inputs and outputs")
    for column in ("", "name", "dtype", "shape"):
        table.add_column(column)
    _io_rows(table, "input", summary.inputs)
    _io_rows(table, "output", summary.outputs)
    console.print(table)


def section_ops(summary: ModelSummary, console: Console, options: InspectOptions) -> None:
    """Op histogram, most frequent first."""
    from rich.table import Table

    table = Table(title="operators")
    table.add_column("op")
    table.add_column("count", justify="right")
    for op, count in summary.ops.items():
        table.add_row(escape(op), str(count))
    console.print(table)


def section_layers(summary: ModelSummary, console: Console, options: InspectOptions) -> None:
    """Top-N Conv/ConvTranspose/Gemm/MatMul nodes by MACs with their share of the total."""
    from rich.table import Table

    layers = summary.top_layers(options.top)
    shown = "all" if not options.top or options.top >= len(summary.layers) else f"top {options.top}"
    table = Table(title=f"layers by MACs ({shown} of {len(summary.layers)})")
    for column, justify in (
        ("layer", "left"),
        ("op", "left"),
        ("output shape", "left"),
        ("params", "right"),
        ("MACs", "right"),
        ("share", "right"),
    ):
        table.add_column(column, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for layer in layers:
        known = summary.macs and not summary.macs_unknown
        share = f"{(layer.macs or 0) / summary.macs:.1%}" if known else "-"
        table.add_row(
            escape(layer.name),
            layer.op_type,
            "?" if summary.macs_unknown else _shape_text(layer.output_shape),
            f"{layer.params:,}",
            "?" if layer.macs is None or summary.macs_unknown else f"{layer.macs:,}",
            share,
        )
    console.print(table)


def section_notes(summary: ModelSummary, console: Console, options: InspectOptions) -> None:
    """Assumptions and inference problems, one line each."""
    for note in summary.notes:
        console.print(f"[yellow]note:[/yellow] {escape(note)}", highlight=False)


SECTIONS: list[Section] = [section_header, section_io, section_ops, section_layers, section_notes]
JSON_EXTRAS: list[Callable[[ModelSummary, InspectOptions], dict]] = []


def inspect_payload(summary: ModelSummary, options: InspectOptions) -> dict:
    """The ``--json`` object: ``summary.to_dict()`` plus ``model`` and ``file_bytes``."""
    payload = summary.to_dict()
    if summary.macs_unknown:
        payload["macs_unknown"] = cli_words(summary.macs_unknown)
    payload["model"] = str(options.model_path)
    payload["file_bytes"] = model_file_bytes(options.model_path)
    for extra in JSON_EXTRAS:
        payload.update(extra(summary, options))
    return payload


def print_report(summary: ModelSummary, options: InspectOptions, sections=None, console=None):
    """Print each section in order (default :data:`SECTIONS`) on a rich console."""
    from rich.console import Console

    console = console or Console()
    for section in sections or SECTIONS:
        section(summary, console, options)


@click.command("inspect")
@click.argument("model", type=click.Path(path_type=Path))
@input_shape_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
@click.option(
    "--groups",
    "show_groups",
    is_flag=True,
    help="Also list the channel groups: size, MAC share, members and why a group is blocked.",
)
@click.option(
    "--sparsity",
    "show_sparsity",
    is_flag=True,
    help="Also list per-layer weight sparsity and whether each layer holds 2:4.",
)
@click.option(
    "--blocks",
    "show_blocks",
    is_flag=True,
    help="Also list the removable residual units (y = x + f(x)): MAC share, stage, and why "
    "other residual joins are not removable.",
)
@attention_unit_option()
@click.option(
    "--top",
    type=click.IntRange(min=0),
    default=10,
    show_default=True,
    help="Layers listed by MACs (0 = all).",
)
def command(
    model: Path,
    input_shapes: tuple[str, ...],
    as_json: bool,
    show_groups: bool,
    show_sparsity: bool,
    show_blocks: bool,
    attention_unit: str,
    top: int,
) -> None:
    """Show producer, opsets, inputs/outputs, parameters, MACs and the heaviest layers of MODEL."""
    from onnxprune.io import load_model
    from onnxprune.stats import summarize

    shapes = parse_input_shapes(input_shapes)
    loaded = load_model(model)
    summary = summarize(loaded, shapes)
    options = InspectOptions(model_path=model, top=top)
    analysis = _channel_analysis(loaded, shapes, attention_unit) if show_groups else None
    search = _block_search(loaded, shapes) if show_blocks else None
    if as_json:
        payload = inspect_payload(summary, options)
        if analysis is not None:
            from onnxprune.analysis.report import describe_groups

            payload["groups"] = describe_groups(analysis)
            payload["prunable_macs"] = analysis.prunable_macs()
            payload["analysis_notes"] = list(analysis.notes)
        if search is not None:
            payload["blocks"] = search.to_dict()
        if show_sparsity:
            payload["weight_sparsity"] = _weight_sparsity_json(loaded)
        click.echo(json.dumps(payload, indent=2))
    else:
        print_report(summary, options)
        if analysis is not None:
            from onnxprune.analysis.report import print_groups

            if summary.macs_unknown:
                click.echo(
                    "note: groups analysed with dynamic dimensions set to 1; shapes that "
                    "depend on them may block groups (" + cli_words(summary.macs_unknown) + ")"
                )
            print_groups(analysis)
            for note in analysis.notes:
                click.echo(f"note: {note}")
        if search is not None:
            from onnxprune.blocks.report import print_units

            print_units(search)
        if show_sparsity:
            print_weight_sparsity(loaded)


def _weight_sparsity_json(model) -> dict:
    from onnxprune.sparsity.measure import weight_sparsity

    rows = weight_sparsity(model)
    total = sum(row.size for row in rows)
    zeros = sum(row.zeros for row in rows)
    return {
        "layers": [row.to_dict() for row in rows],
        "total_weights": total,
        "zeros": zeros,
        "sparsity": zeros / total if total else 0.0,
    }


def print_weight_sparsity(model, console=None) -> None:
    """Per-layer zero share of Conv/ConvTranspose/Gemm/MatMul weights and 2:4 (- = the
    reduction axis does not split into groups of 4)."""
    from rich.console import Console
    from rich.table import Table

    from onnxprune.sparsity.measure import weight_sparsity

    console = console or Console()
    rows = weight_sparsity(model)
    table = Table(title="weight sparsity")
    for column in ("layer", "op", "weights", "zeros", "2:4"):
        table.add_column(column, justify="left" if column in ("layer", "op") else "right")
    for row in rows:
        nm = "-" if row.holds_nm is None else ("yes" if row.holds_nm else "no")
        table.add_row(escape(row.node), row.op_type, str(row.size), f"{row.sparsity:.1%}", nm)
    console.print(table)
    total = sum(row.size for row in rows)
    zeros = sum(row.zeros for row in rows)
    console.print(f"whole model: {zeros / total if total else 0.0:.1%} of {total} weights zero")


def _channel_analysis(model, shapes, attention_unit: str = "head"):
    """Preprocess and analyse ``model`` for the ``--groups`` section."""
    from onnxprune.analysis import analyze, attention_head_dim
    from onnxprune.passes import preprocess

    prepared = preprocess(model, input_shapes=shapes).model
    return analyze(prepared, shapes, head_dim=attention_head_dim(attention_unit))


def _block_search(model, shapes):
    """Preprocess ``model`` and find its residual units for the ``--blocks`` section."""
    from onnxprune.blocks.api import search_model

    return search_model(model, shapes)
