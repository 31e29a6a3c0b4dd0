"""User-facing errors and the exit codes the CLI maps them to.

Every error a user can cause (bad path, corrupt model, wrong data shape, unknown option value)
is raised as an :class:`OnnxPruneError` subclass carrying a one-line message; the CLI prints
that line and exits with ``exit_code``. Anything else is a bug in onnxprune.
"""

from __future__ import annotations

import re

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_BAD_INPUT = 2
EXIT_GUARD_NOT_MET = 3


class OnnxPruneError(Exception):
    """Base class of errors caused by the user's input; the message is one line."""

    exit_code: int = EXIT_BAD_INPUT


class InputError(OnnxPruneError):
    """The model, data or options given cannot be used (exit code 2)."""


class ModelLoadError(InputError):
    """The model file is missing, truncated, not ONNX or unsupported (exit code 2)."""


class UnsupportedModelError(InputError):
    """The model is valid ONNX but outside what onnxprune can process (exit code 2)."""


class GuardNotMetError(OnnxPruneError):
    """The accuracy guard could not be met at the requested target (exit code 3)."""

    exit_code = EXIT_GUARD_NOT_MET


def input_shape_hint(name: str, dims: str = "D0, D1, ...") -> str:
    """How to fix an input's shape, in the API's words (``input_shapes={'x': [1, 3, 224,
    224]}``); the CLI rewrites it to ``--input-shape x:1,3,224,224`` (:func:`cli_words`)."""
    return f"input_shapes={{{name!r}: [{dims}]}}"


_SHAPE_HINT = re.compile(r"input_shapes=\{'([^']*)': \[([^\]]*)\]\}")
_SHAPE_ITEM = re.compile(r"input_shapes\['([^']*)'\]")


def cli_words(message: str) -> str:
    """An error message in the CLI's words: API option spellings become flags
    (``input_shapes={'x': [1, 3]}`` -> ``--input-shape x:1,3``, ``input_shapes['x']`` ->
    ``--input-shape x``, ``input_shapes`` -> ``--input-shape``, ``data=...`` -> ``--data``)."""
    message = _SHAPE_HINT.sub(
        lambda m: f"--input-shape {m.group(1)}:{m.group(2).replace(' ', '')}", message
    )
    message = _SHAPE_ITEM.sub(lambda m: f"--input-shape {m.group(1)}", message)
    message = re.sub(r"\binput_shapes\b", "--input-shape", message)
    message = re.sub(r"\bignore=\.\.\.", "--ignore GLOB", message)
    message = re.sub(r"\bround_to=", "--round-to ", message)
    message = re.sub(r"\bnm_coverage\b", "--nm-coverage", message)
    message = re.sub(r"\(give pattern='N:M'\)", "(give --pattern N:M)", message)
    return re.sub(r"\bdata=\.\.\.", "--data PATH", message)


class InternalError(RuntimeError):
    """A bug in onnxprune (exit code 1), e.g. ONNX Runtime refusing a model onnxprune wrote.

    Not an :class:`OnnxPruneError`: the user's input is fine; the message says it is a bug.
    """
