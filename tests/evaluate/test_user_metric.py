"""User metrics: module:function, file.py:function, callables, register_metric."""

from __future__ import annotations

import numpy as np
import pytest

from onnxprune.errors import InputError
from onnxprune.evaluate import get_metric, register_metric, resolve_metric, unregister_metric

SOURCE = """
import numpy as np

def mean_logit(outputs, labels):
    return float(np.mean(outputs[0]))

class Holder:
    @staticmethod
    def count(outputs, labels):
        return float(len(labels))

not_callable = 3

def broken(outputs, labels):
    raise ZeroDivisionError("boom")
"""


def test_file_and_module_paths(tmp_path, monkeypatch):
    path = tmp_path / "my_metrics.py"
    path.write_text(SOURCE)
    outputs, labels = [np.array([[1.0, 3.0]])], np.array([1])
    by_file = resolve_metric(f"{path}:mean_logit")
    assert by_file.kind == "custom" and by_file.name == f"{path}:mean_logit"
    assert by_file(outputs, labels) == 2.0
    monkeypatch.syspath_prepend(str(tmp_path))
    assert resolve_metric("my_metrics:Holder.count")(outputs, labels) == 1.0


def test_errors(tmp_path, monkeypatch):
    path = tmp_path / "m.py"
    path.write_text(SOURCE)
    with pytest.raises(InputError, match="has no attribute 'missing'"):
        resolve_metric(f"{path}:missing")
    with pytest.raises(InputError, match="not callable"):
        resolve_metric(f"{path}:not_callable")
    with pytest.raises(InputError, match="does not exist"):
        resolve_metric(f"{tmp_path}/none.py:f")
    with pytest.raises(InputError, match="cannot import 'no_such_module_xyz'"):
        resolve_metric("no_such_module_xyz:f")
    bad = tmp_path / "bad.py"
    bad.write_text("raise RuntimeError('at import')\n")
    with pytest.raises(InputError, match=r"loading .* failed: RuntimeError"):
        resolve_metric(f"{bad}:f")
    with pytest.raises(InputError, match="unknown metric"):
        resolve_metric("nonsense")
    with pytest.raises(InputError, match="expected module:function"):
        resolve_metric(":f")


def test_callable_and_registration():
    def half_top(outputs, labels):
        return 50.0

    assert resolve_metric(half_top).name == "half_top"
    register_metric("half_top_test", half_top)
    try:
        metric = get_metric("half_top_test")
        assert metric.kind == "custom" and metric([], None) == 50.0
        with pytest.raises(InputError, match="already registered"):
            register_metric("half_top_test", half_top)
        register_metric("half_top_test", lambda o, y: 1.0, overwrite=True)
        assert get_metric("half_top_test")([], None) == 1.0
        with pytest.raises(InputError, match="already registered"):
            register_metric("top1", half_top, overwrite=True)
        with pytest.raises(InputError, match="callable"):
            register_metric("x_test", 3)
    finally:
        unregister_metric("half_top_test")
    with pytest.raises(InputError):
        get_metric("half_top_test")


def test_entry_point_plugins_are_found_by_name(tmp_path, monkeypatch):
    (tmp_path / "plugin_metrics_pkg.py").write_text(
        "def always_42(outputs, labels):\n    return 42.0\n"
    )
    info = tmp_path / "plugin_metrics_pkg-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: plugin-metrics-pkg\nVersion: 0.1\n"
    )
    (info / "entry_points.txt").write_text(
        "[onnxprune.metrics]\nforty_two = plugin_metrics_pkg:always_42\n"
        "broken_plugin = plugin_metrics_pkg:missing\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        metric = get_metric("forty_two")
        assert metric.kind == "custom" and metric([], None) == 42.0
        with pytest.raises(InputError, match="cannot load plug-in"):
            get_metric("broken_plugin")
    finally:
        unregister_metric("forty_two")
