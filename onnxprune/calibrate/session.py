"""Run a model in ONNX Runtime with chosen intermediate tensors as its only outputs.

``exposed_model(model, names)`` keeps just the nodes the requested tensors depend on (so early
layers are cheap to calibrate) and makes those tensors the graph outputs. ``run_exposed``
streams feed batches through it and yields one ``{name: array}`` dict per batch; nothing is
kept between batches.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import onnx
from onnx import ModelProto, helper

from onnxprune.analysis.graph_view import GraphView
from onnxprune.io.provenance import run_failure, session_failure


def exposed_model(model: ModelProto, names: list[str], elem_types: dict[str, int]) -> ModelProto:
    """A copy of ``model`` whose outputs are ``names`` and whose nodes are their ancestors.

    ``elem_types`` gives the ONNX element type of each name (the dtype of the consumer's weight).
    Graph inputs are kept as they are, so the same feeds work.
    """
    view = GraphView(model)
    needed = set(names)
    keep = []
    for node in reversed(view.nodes):
        if any(out in needed for out in node.outputs if out):
            keep.append(node.index)
            needed.update(n for n in {*node.inputs, *node.subgraph_inputs} if n)
    keep_set = set(keep)
    exposed = ModelProto()
    exposed.CopyFrom(model)
    graph = exposed.graph
    nodes = [node for index, node in enumerate(model.graph.node) if index in keep_set]
    del graph.node[:]
    graph.node.extend(nodes)
    used = {name for node in nodes for name in node.input} | needed
    initializers = [init for init in model.graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(initializers)
    del graph.output[:]
    graph.output.extend(
        helper.make_tensor_value_info(name, elem_types.get(name, onnx.TensorProto.FLOAT), None)
        for name in names
    )
    del graph.value_info[:]
    return exposed


def make_session(model: ModelProto):
    """A CPU ONNX Runtime session for an in-memory model."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 4  # errors come back as exceptions
    try:
        return ort.InferenceSession(
            model.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
    except Exception as error:
        raise session_failure(model, error) from None


class ExposedRunner:
    """A session of :func:`exposed_model`; calling it on a feed batch returns the exposed
    tensors by name."""

    def __init__(self, model: ModelProto, names: list[str], elem_types: dict[str, int]) -> None:
        graph_inputs = {value.name for value in model.graph.input}
        self.passed = [name for name in dict.fromkeys(names) if name in graph_inputs]
        self.names = [name for name in dict.fromkeys(names) if name not in graph_inputs]
        self.model = exposed_model(model, self.names, elem_types) if self.names else None
        self.session = make_session(self.model) if self.model is not None else None
        self.inputs = {value.name for value in self.session.get_inputs()} if self.session else set()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The exposed tensors of ``batch``; a requested graph input is the batch's own."""
        result = {name: batch[name] for name in self.passed}
        if self.session is None:
            return result
        feeds = {key: value for key, value in batch.items() if key in self.inputs}
        try:
            outputs = self.session.run(self.names, feeds)
        except Exception as error:
            raise run_failure(self.model, error, feeds) from None
        result.update(zip(self.names, outputs, strict=True))
        return result


def run_exposed(
    model: ModelProto,
    names: list[str],
    elem_types: dict[str, int],
    feeds: Iterable[dict[str, np.ndarray]],
) -> Iterator[dict[str, np.ndarray]]:
    """Yield ``{name: value}`` for every feed batch (tensors of ``names`` only)."""
    if not names:
        return
    runner = ExposedRunner(model, names, elem_types)
    for batch in feeds:
        yield runner(batch)


def check_runs_on(model: ModelProto, calibration, *, batch_size: int) -> None:
    """The data door's check that the input ``model`` runs on the first ``batch_size`` samples
    of ``calibration``; ONNX Runtime's refusal becomes the error :func:`run_failure` blames.

    Why: statistics passes run truncated copies of the graph (:func:`exposed_model`), which can
    succeed on data the whole model refuses (a graph that fixes the batch inside runs its early
    layers on any batch), and the numbers they return would then not be the model's. A model
    holding ONNX ``Attention`` is checked in its lowered form (what every later step runs).
    """
    from onnxprune.calibrate.data import iter_feeds
    from onnxprune.passes.lower_attention import attention_lowered

    feeds = next(iter_feeds(calibration, model, batch_size=batch_size, max_samples=batch_size))
    # ONNX Attention runs in the form onnxprune writes: ORT's kernel refuses padding masks
    session = make_session(attention_lowered(model)[0])
    names = {value.name for value in session.get_inputs()}
    feeds = {name: value for name, value in feeds.items() if name in names}
    try:
        session.run(None, feeds)
    except Exception as error:
        raise run_failure(model, error, feeds) from None
