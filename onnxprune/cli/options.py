"""Option parsers shared by several commands (input shapes, globs, key=value pairs)."""

from __future__ import annotations

import click

from onnxprune.analysis import ATTENTION_UNITS
from onnxprune.errors import InputError


def parse_input_shapes(values: tuple[str, ...] | list[str]) -> dict[str, list[int]]:
    """Parse ``NAME:1,3,224,224`` items into ``{NAME: [1, 3, 224, 224]}``."""
    shapes: dict[str, list[int]] = {}
    for item in values:
        name, sep, dims = item.rpartition(":")
        if not sep or not name or not dims:
            raise InputError(f"--input-shape expects NAME:D1,D2,..., got {item!r}")
        try:
            parsed = [int(d) for d in dims.split(",")]
        except ValueError:
            raise InputError(f"--input-shape {item!r}: dimensions must be integers") from None
        if any(d <= 0 for d in parsed):
            raise InputError(f"--input-shape {item!r}: dimensions must be positive")
        shapes[name] = parsed
    return shapes


input_shape_option = click.option(
    "--input-shape",
    "input_shapes",
    multiple=True,
    metavar="NAME:D1,D2,...",
    help="Fix a model input's shape (dynamic dimensions); batch defaults to 1. Repeatable.",
)


def attention_unit_option(default: str | None = "head"):
    """``--attention-unit head|head_dim`` (what attention loses; None: the config's value)."""
    return click.option(
        "--attention-unit",
        type=click.Choice(list(ATTENTION_UNITS)),
        default=default,
        show_default=default is not None,
        help="What attention loses: whole heads (head) or the same head_dim positions of "
        "every head (head_dim)" + ("" if default else "; default head") + ".",
    )
