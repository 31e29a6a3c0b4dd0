"""User-facing errors and the exit codes the CLI maps them to.

Every error a user can cause (bad path, corrupt model, wrong data shape, unknown option value)
is raised as an :class:`OnnxPruneError` subclass carrying a one-line message; the CLI prints
that line and exits with ``exit_code``. Anything else is a bug in onnxprune.
"""

from __future__ import annotations

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


class InternalError(RuntimeError):
    """A bug in onnxprune (exit code 1), e.g. ONNX Runtime refusing a model onnxprune wrote.

    Not an :class:`OnnxPruneError`: the user's input is fine; the message says it is a bug.
    """
