"""User option text (CLI flags and config-file values) read into values.

The CLI, :mod:`onnxprune.pipeline.config` and the sparsity API read the same spellings, so
the parsers live here, below them all; a malformed item raises
:class:`~onnxprune.errors.InputError` with one line.
"""

from __future__ import annotations

from collections.abc import Iterable

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


def parse_glob_values(items: Iterable[object], option: str, value_word: str) -> dict[str, float]:
    """``GLOB=VALUE`` items -> {GLOB: VALUE}; the last ``=`` splits (a glob may hold one).

    ``option`` and ``value_word`` name the flag and its value in the one-line error
    (``--ratio-for expects GLOB=RATIO``)."""
    parsed: dict[str, float] = {}
    for item in items:
        pattern, sep, value = str(item).rpartition("=")
        try:
            parsed[pattern] = float(value)
        except ValueError:
            pattern = ""
        if not sep or not pattern:
            raise InputError(f"{option} expects GLOB={value_word}, got {item!r}")
    return parsed


def parse_ratio_for(values: tuple[str, ...]) -> dict[str, float]:
    """``GLOB=R`` items -> {GLOB: R}."""
    return parse_glob_values(values, "--ratio-for", "RATIO")
