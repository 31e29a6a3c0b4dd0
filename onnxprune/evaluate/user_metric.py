"""Resolve what a user gives as ``--metric`` / ``metric=`` into a :class:`Metric`.

Accepted: a registered name (built-in or :func:`~onnxprune.evaluate.registry.register_metric`),
``package.module:function`` (imported), ``path/to/file.py:function`` (loaded from the file),
or a Python callable ``metric(outputs, labels) -> float``. The user function receives the
model's outputs (list of arrays, in output order) and the labels (None when the data has
none); larger values must be better unless registered with ``higher_is_better=False``.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path

from onnxprune.errors import InputError
from onnxprune.evaluate.registry import KIND_CUSTOM, Metric, get_metric


def resolve_metric(spec: str | Callable | Metric) -> Metric:
    """A :class:`Metric` for ``spec`` (see module doc); InputError when it cannot be found."""
    if isinstance(spec, Metric):
        return spec
    if callable(spec):
        name = getattr(spec, "__name__", None) or type(spec).__name__
        return Metric(str(name), spec, KIND_CUSTOM)
    if not isinstance(spec, str) or not spec.strip():
        raise InputError(f"metric must be a name, module:function or a callable, got {spec!r}")
    spec = spec.strip()
    if ":" in spec:
        return Metric(spec, load_callable(spec), KIND_CUSTOM)
    return get_metric(spec)


def load_callable(spec: str) -> Callable:
    """Import ``module:attr`` or ``path/file.py:attr`` (``attr`` may be dotted)."""
    target, _, attr = spec.rpartition(":")
    if not target or not attr:
        raise InputError(f"metric '{spec}': expected module:function or file.py:function")
    if target.endswith(".py") or "/" in target or "\\" in target:
        module = _load_file(Path(target), spec)
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as error:
            raise InputError(f"metric '{spec}': cannot import '{target}': {error}") from None
        except Exception as error:  # user code failing at import
            raise InputError(
                f"metric '{spec}': importing '{target}' failed: {type(error).__name__}: {error}"
            ) from None
    value = module
    for part in attr.split("."):
        if not hasattr(value, part):
            raise InputError(f"metric '{spec}': '{target}' has no attribute '{attr}'")
        value = getattr(value, part)
    if not callable(value):
        raise InputError(f"metric '{spec}': '{attr}' is not callable")
    return value


def _load_file(path: Path, spec: str):
    if not path.is_file():
        raise InputError(f"metric '{spec}': file '{path}' does not exist")
    name = f"onnxprune_user_metric_{abs(hash(str(path.resolve())))}"
    if name in sys.modules:
        return sys.modules[name]
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise InputError(f"metric '{spec}': cannot load '{path}' as Python")
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except Exception as error:  # user code failing at import
        raise InputError(
            f"metric '{spec}': loading '{path}' failed: {type(error).__name__}: {error}"
        ) from None
    sys.modules[name] = module
    return module
