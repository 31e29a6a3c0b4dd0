"""Who made a model: the user (an input that was loaded) or a step of onnxprune.

ONNX Runtime refusing a model is the user's problem when the model is their input and our bug
when onnxprune wrote the model. :func:`register_input_model` remembers the last model
:func:`~onnxprune.io.load_model` returned (by reference, no copy: the input being processed); :func:`model_step` names the
step that is building models (``preprocess``, ``rewrite``, ``recover``...) in a context variable.

:func:`session_failure` turns an ONNX Runtime session-creation error into the right exception:

* the model is a registered input (the same object or an equal graph), or a file path → an
  :class:`~onnxprune.errors.InputError` ``ONNX Runtime cannot run model 'PATH': <first line>``;
* a model onnxprune made → it first checks, once, whether ONNX Runtime can open the input the
  model came from (the most recently loaded input); if it cannot, the input is to blame
  (InputError naming it); otherwise an :class:`~onnxprune.errors.InternalError` saying that
  this is a bug in onnxprune and which step made the model. Nothing is retried beyond that one
  diagnostic session per input.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterator

from onnx import ModelProto

from onnxprune.errors import InputError, InternalError

_REMEMBERED = 1  # the input being processed; older ones would be blamed for nothing
_inputs: list[tuple[str, ModelProto]] = []
_step: contextvars.ContextVar[str | None] = contextvars.ContextVar("onnxprune_step", default=None)


def register_input_model(model: ModelProto, label: str) -> None:
    """Remember ``model`` (loaded from ``label``) as the user input being processed."""
    _inputs[:] = [(name, kept) for name, kept in _inputs if kept is not model]
    _inputs.append((label, model))
    del _inputs[:-_REMEMBERED]


def input_models() -> list[tuple[str, ModelProto]]:
    """(label, model) of the remembered inputs, most recent first."""
    return list(reversed(_inputs))


def input_label(model: ModelProto) -> str | None:
    """The label of the registered input ``model`` is (same object, or an equal graph)."""
    for label, kept in reversed(_inputs):
        if kept is model:
            return label
    for label, kept in reversed(_inputs):
        if kept.graph == model.graph:
            return label
    return None


@contextlib.contextmanager
def model_step(name: str) -> Iterator[None]:
    """Models built inside this block were made by step ``name`` (for error messages)."""
    token = _step.set(name)
    try:
        yield
    finally:
        _step.reset(token)


def current_step() -> str | None:
    """The innermost :func:`model_step` name, or None outside any."""
    return _step.get()


def first_line(error: BaseException | str, limit: int = 300) -> str:
    """The first non-empty line of an error message, whitespace-collapsed and cut at ``limit``."""
    text = str(error)
    lines = [" ".join(line.split()) for line in text.splitlines() if line.strip()]
    line = lines[0] if lines else type(error).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."


def session_failure(model: ModelProto | str | os.PathLike, error: BaseException) -> Exception:
    """The exception to raise when ONNX Runtime could not create a session for ``model``."""
    reason = first_line(error)
    if not isinstance(model, ModelProto):
        return runtime_input_error(os.fspath(model), reason)
    label = input_label(model)
    if label is not None:
        return runtime_input_error(label, reason)
    for label, original in input_models():
        original_reason = _session_refusal(original)
        if original_reason is not None:
            return runtime_input_error(label, original_reason)
    step = current_step()
    made_by = f"step '{step}'" if step else "one of its steps"
    origin = input_models()[0][0] if _inputs else "the input"
    return InternalError(
        f"bug in onnxprune: ONNX Runtime cannot run the model that {made_by} made from "
        f"'{origin}' (the input itself runs): {reason}; please report it with the model"
    )


def run_failure(
    model: ModelProto | str | os.PathLike | None,
    error: BaseException,
    feeds: dict | None = None,
) -> Exception:
    """The exception to raise when ONNX Runtime failed while *running* ``model`` on ``feeds``.

    Same blame as :func:`session_failure`; for a model onnxprune made, the remembered inputs are
    run once on the same feeds (inputs they do not have are dropped) to see whether they fail.
    """
    reason = first_line(error)
    if model is None or not isinstance(model, ModelProto):
        label = os.fspath(model) if model is not None else "<model>"
        return runtime_input_error(label, reason, running=True)
    label = input_label(model)
    if label is not None:
        return runtime_input_error(label, reason, running=True)
    for label, original in input_models():
        original_reason = _run_refusal(original, feeds or {})
        if original_reason is not None:
            return runtime_input_error(label, original_reason, running=True)
    step = current_step()
    made_by = f"step '{step}'" if step else "one of its steps"
    origin = input_models()[0][0] if _inputs else "the input"
    return InternalError(
        f"bug in onnxprune: ONNX Runtime failed running the model that {made_by} made from "
        f"'{origin}' (the input itself runs on the same data): {reason}; please report it"
    )


def runtime_input_error(label: str, reason: str, *, running: bool = False) -> InputError:
    """The InputError of an input model ONNX Runtime refuses."""
    if running:
        return InputError(
            f"ONNX Runtime failed running model '{label}' on the given data: {reason}; check "
            "the model with onnxruntime.InferenceSession(...).run on this data"
        )
    return InputError(
        f"ONNX Runtime cannot run model '{label}': {reason}; check that the model runs in "
        "onnxruntime.InferenceSession and re-export it"
    )


def _run_refusal(model: ModelProto, feeds: dict) -> str | None:
    """ONNX Runtime's first error line when ``model`` cannot be opened or run on ``feeds``."""
    session = _open(model)
    if isinstance(session, str) or session is None:
        return session
    names = {value.name for value in session.get_inputs()}
    if not names <= set(feeds):
        return None  # the input needs feeds the failing model did not get: no verdict
    try:
        session.run(None, {name: feeds[name] for name in names})
    except Exception as error:
        return first_line(error)
    return None


def _session_refusal(model: ModelProto) -> str | None:
    """ONNX Runtime's first error line when it cannot open ``model`` (CPU), else None."""
    session = _open(model)
    return session if isinstance(session, str) else None


def _open(model: ModelProto):
    """A CPU session of ``model``, the first error line when it cannot be opened, or None
    when no verdict is possible (over 2 GB)."""
    try:
        import onnxruntime as ort
    except ImportError:  # pragma: no cover - onnxruntime is a dependency
        return None
    try:
        serialized = model.SerializeToString()
    except Exception:
        return None
    options = ort.SessionOptions()
    options.log_severity_level = 4
    try:
        return ort.InferenceSession(serialized, options, providers=["CPUExecutionProvider"])
    except Exception as error:
        return first_line(error)
