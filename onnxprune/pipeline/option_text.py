"""User option text (CLI flags and config-file values) read into values.

Both the CLI and :mod:`onnxprune.pipeline.config` read the same spellings, so the parsers live
here, below both; a malformed item raises :class:`~onnxprune.errors.InputError` with one line.
"""

from __future__ import annotations

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


def parse_ratio_for(values: tuple[str, ...]) -> dict[str, float]:
    """``GLOB=R`` items -> {GLOB: R}."""
    parsed: dict[str, float] = {}
    for item in values:
        pattern, sep, value = item.rpartition("=")
        try:
            parsed[pattern] = float(value)
        except ValueError:
            pattern = ""
        if not sep or not pattern:
            raise InputError(f"--ratio-for expects GLOB=RATIO, got {item!r}")
    return parsed
