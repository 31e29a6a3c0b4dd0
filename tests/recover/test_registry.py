"""Recovery methods are selected by name; users register their own."""

from __future__ import annotations

import pytest

from onnxprune.errors import InputError
from onnxprune.recover import describe_recovery, make_recovery, recovery_names
from onnxprune.recover.registry import _METHODS, register_recovery


def test_builtin_methods_are_registered_with_their_math():
    assert {"none", "bias", "lsq", "reconstruct"} <= set(recovery_names())
    assert "argmin" in describe_recovery("reconstruct")
    assert "E[x_c]" in describe_recovery("bias")


def test_a_plugin_is_selected_by_name_and_gets_the_settings():
    seen = {}

    @register_recovery("test-plugin", needs_data=False)
    def plugin(analysis, calibration, settings):
        """Returns the pruned model untouched."""
        seen["ridge"] = settings.ridge
        return lambda current, removed, pruned: pruned

    try:
        recover = make_recovery("test-plugin", None, None, ridge=0.5)
        assert recover(None, {1}, "model") == "model"
        assert seen == {"ridge": 0.5}
    finally:
        _METHODS.pop("test-plugin")


def test_unknown_names_and_options_are_input_errors():
    with pytest.raises(InputError, match="unknown recovery 'nope'; known: none, bias"):
        make_recovery("nope", None, None)
    with pytest.raises(InputError, match="unknown recovery option"):
        make_recovery("none", None, None, rigde=1.0)
    with pytest.raises(InputError, match="needs calibration data"):
        make_recovery("reconstruct", None, None)


def test_distillation_methods_are_registered():
    from onnxprune.errors import InputError
    from onnxprune.recover import make_recovery, recovery_names

    assert {"distill", "lsq+distill", "reconstruct", "lsq", "bias", "none"} <= set(recovery_names())
    with pytest.raises(InputError, match="needs calibration data"):
        make_recovery("distill", None, None)
