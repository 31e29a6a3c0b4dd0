"""Option parsers shared by several commands (input shapes, globs, key=value pairs)."""

from __future__ import annotations

import click

from onnxprune.analysis import ATTENTION_UNITS

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
