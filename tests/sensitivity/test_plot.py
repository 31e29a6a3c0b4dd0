"""The sensitivity plot is a PNG, also for a table with more groups than are highlighted."""

from __future__ import annotations

import pytest

from onnxprune.errors import InputError
from onnxprune.sensitivity.plot import sensitivity_plot, write_sensitivity_plot
from onnxprune.sensitivity.table import GroupSensitivity, SensitivityPoint, SensitivityTable


def _table(groups: int) -> SensitivityTable:
    entries = [
        GroupSensitivity(
            i, f"g{i}", [f"g{i}"], 10, 1, 9,
            [SensitivityPoint(r, int(r * 10), 1.0, 1.0, r * i) for r in (0.2, 0.6)],
        )
        for i in range(groups)
    ]  # fmt: skip
    return SensitivityTable("kl", "l1", [0.2, 0.6], 8, 100.0, entries)


def test_png_bytes(tmp_path):
    png = sensitivity_plot(_table(8), highlight=3)
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000
    path = write_sensitivity_plot(_table(1), tmp_path / "s.png")
    assert path.read_bytes().startswith(b"\x89PNG")


def test_unwritable_path(tmp_path):
    with pytest.raises(InputError, match="cannot write plot"):
        write_sensitivity_plot(_table(2), tmp_path / "missing" / "s.png")
