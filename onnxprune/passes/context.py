"""State shared by the preprocessing passes and the result of :func:`preprocess`."""

from __future__ import annotations

from dataclasses import dataclass, field

from onnx import ModelProto


@dataclass
class PassContext:
    """What a pass may read and record.

    ``input_shapes`` are the user's fixed input shapes (used for checks only, never baked into
    the graph), ``opset`` the default-domain opset of the model (a pass that bumps it updates
    it here; ``allow_opset_raise`` forbids that), ``notes`` human-readable lines for the report.
    """

    input_shapes: dict[str, list[int]] | None = None
    opset: int = 17
    notes: list[str] = field(default_factory=list)
    allow_opset_raise: bool = True

    def note(self, message: str) -> None:
        """Append one line to the report notes."""
        self.notes.append(message)


@dataclass
class PreprocessResult:
    """The preprocessed model, the passes' notes and which passes changed the graph."""

    model: ModelProto
    notes: list[str]
    applied: dict[str, bool]
