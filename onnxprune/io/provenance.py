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
from dataclasses import dataclass

from onnx import ModelProto

from onnxprune.errors import InputError, InternalError

_MARKED = 64


@dataclass
class _Input:
    label: str
    identity: int
    path: str | None  # diagnosis re-opens the file: nothing big is kept alive
    model: ModelProto | None  # only for in-memory inputs


_inputs: list[_Input] = []
_made_by: dict[int, tuple[str, tuple]] = {}
_step: contextvars.ContextVar[str | None] = contextvars.ContextVar("onnxprune_step", default=None)


def register_input_model(
    model: ModelProto, label: str, path: str | os.PathLike | None = None
) -> None:
    """Remember ``model`` (loaded from ``label``) as the user input being processed.

    With ``path`` (the file it came from) only the path and the object's identity are kept;
    an in-memory input is kept by reference (no copy).
    """
    kept = None if path is not None else model
    _inputs[:] = [_Input(label, id(model), None if path is None else os.fspath(path), kept)]


def input_label(model: ModelProto) -> str | None:
    """The label of the registered input when ``model`` is it (same object or equal graph)."""
    for entry in _inputs:
        if entry.identity == id(model) or (
            entry.model is not None and entry.model.graph == model.graph
        ):
            return entry.label
    return None


def mark_made_by(model: ModelProto, step: str) -> ModelProto:
    """Record that ``step`` made ``model`` (by object identity, the last 64) and return it.

    Sessions are often created after the step returned; this is how their errors name it.
    """
    _made_by.pop(id(model), None)
    _made_by[id(model)] = (step, _fingerprint(model))
    while len(_made_by) > _MARKED:
        del _made_by[next(iter(_made_by))]
    return model


def _fingerprint(model: ModelProto) -> tuple:
    """Cheap identity check beside ``id``: a freed model's id is reused by later objects (one
    test's recovered model named the step of another's broken copy)."""
    graph = model.graph
    last = tuple(graph.node[-1].output) if graph.node else ()
    return len(graph.node), len(graph.initializer), len(graph.input), last


def made_by(model: ModelProto) -> str | None:
    """The step :func:`mark_made_by` recorded for ``model`` (the same object, by id and a
    fingerprint of its graph), else the current :func:`model_step`."""
    entry = _made_by.get(id(model))
    if entry is not None and entry[1] == _fingerprint(model):
        return entry[0]
    return current_step()


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
    for entry in _inputs:
        original_reason = _session_refusal(entry)
        if original_reason is not None:
            return runtime_input_error(entry.label, original_reason)
    step = made_by(model)
    maker = f"step '{step}'" if step else "one of its steps"
    origin = _inputs[0].label if _inputs else "the input"
    return InternalError(
        f"bug in onnxprune: ONNX Runtime cannot run the model that {maker} made from "
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
        if model is not None:
            reason += _one_sample_hint(_open(_Input(label, 0, label, None)), feeds or {})
        return runtime_input_error(label, reason, running=True)
    label = input_label(model)
    if label is not None:
        reason += _one_sample_hint(_open(_Input(label, id(model), None, model)), feeds or {})
        return runtime_input_error(label, reason, running=True)
    for entry in _inputs:
        original_reason = _run_refusal(entry, feeds or {})
        if original_reason is not None:
            return runtime_input_error(entry.label, original_reason, running=True)
    step = made_by(model)
    maker = f"step '{step}'" if step else "one of its steps"
    origin = _inputs[0].label if _inputs else "the input"
    return InternalError(
        f"bug in onnxprune: ONNX Runtime failed running the model that {maker} made from "
        f"'{origin}' (the input itself runs on the same data): {reason}; please report it"
    )


def runtime_input_error(label: str, reason: str, *, running: bool = False) -> InputError:
    """The InputError of an input model ONNX Runtime refuses."""
    if running:
        todo = "check the model with onnxruntime.InferenceSession(...).run on this data"
        if "Attention node" in reason and "attention_helper" in reason:
            todo = (
                "ONNX Runtime's Attention kernel refused the node's operands (version 1.31 "
                "does not broadcast PyTorch's padding mask [B, 1, 1, T] over the queries); "
                "re-export at opset 22 or below, where attention is MatMul/Softmax/MatMul"
            )
        return InputError(
            f"ONNX Runtime failed running model '{label}' on the given data: {reason}; {todo}"
        )
    todo = (
        "convert it to a newer opset (onnx.version_converter.convert_version(model, 17)) or "
        "re-export it"
        if "Could not find an implementation" in reason
        else "re-export it"
    )
    return InputError(
        f"ONNX Runtime cannot run model '{label}': {reason}; check that the model runs in "
        f"onnxruntime.InferenceSession and {todo}"
    )


def _run_refusal(entry: _Input, feeds: dict) -> str | None:
    """ONNX Runtime's first error line when the input cannot be opened or run on ``feeds``."""
    session = _open(entry)
    if isinstance(session, str) or session is None:
        return session
    names = {value.name for value in session.get_inputs()}
    if not names <= set(feeds):
        return None  # the input needs feeds the failing model did not get: no verdict
    try:
        session.run(None, {name: feeds[name] for name in names})
    except Exception as error:
        return first_line(error) + _one_sample_hint(session, feeds)
    return None


#: What :func:`_one_sample_hint` adds when a model runs one sample but not a batch of several.
ONE_SAMPLE_HINT = (
    " (it runs on one sample at a time: its graph fixes the batch, e.g. a Reshape to [1, -1], "
    "while its inputs declare a free batch; re-export it with a free batch, or declare the "
    "inputs' batch dimension as 1 and onnxprune feeds one sample at a time)"
)


def _one_sample_hint(session, feeds: dict) -> str:
    """:data:`ONE_SAMPLE_HINT` when ``feeds`` hold several samples, the model fails on them
    and runs on the first sample alone; '' otherwise (or when no session could be opened)."""
    if session is None or isinstance(session, str):
        return ""
    names = [value.name for value in session.get_inputs()]
    if not names or not set(names) <= set(feeds):
        return ""
    arrays = {name: feeds[name] for name in names}
    if any(getattr(array, "ndim", 0) == 0 or len(array) < 2 for array in arrays.values()):
        return ""
    try:
        session.run(None, {name: array[:1] for name, array in arrays.items()})
    except Exception:
        return ""
    return ONE_SAMPLE_HINT


def _session_refusal(entry: _Input) -> str | None:
    """ONNX Runtime's first error line when it cannot open the input (CPU), else None."""
    session = _open(entry)
    return session if isinstance(session, str) else None


def _open(entry: _Input):
    """A CPU session of the input, the first error line when it cannot be opened, or None
    when no verdict is possible (an in-memory model over 2 GB, or nothing kept)."""
    try:
        import onnxruntime as ort
    except ImportError:  # pragma: no cover - onnxruntime is a dependency
        return None
    if entry.path is not None:
        source = entry.path
    elif entry.model is not None:
        try:
            source = entry.model.SerializeToString()
        except Exception:
            return None
    else:
        return None
    options = ort.SessionOptions()
    options.log_severity_level = 4
    try:
        return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    except Exception as error:
        return first_line(error)
