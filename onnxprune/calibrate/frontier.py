"""Run a model level by level from the tensors an earlier level left behind.

Sequential reconstruction needs, at each level, some tensors of the pruned model computed by
layers that will not change any more. Running the model from its inputs every level costs a
prefix pass per level (quadratic in depth). :class:`FrontierRunner` keeps, over all
calibration samples, the *frontier*: every tensor produced by the nodes run so far that a node
not yet run still reads. The next level then runs only the nodes between the frontier and its
tensors (a segment model whose inputs are the frontier tensors and the graph inputs).

Valid because a level only asks for tensors upstream of every layer not yet refitted, so the
nodes already run never change. The frontier is kept only while it fits ``budget_bytes`` for
all samples and every tensor in it has one row per sample; otherwise the next level runs from
the graph inputs (the result is the same; only the cost differs).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import onnx
from onnx import ModelProto, helper

from onnxprune.analysis.graph_view import GraphView
from onnxprune.calibrate.session import make_session


def _segment(view: GraphView, wanted: list[str], available: set[str]) -> list:
    """Nodes (graph order) needed for ``wanted`` when ``available`` tensors are given."""
    needed = {name for name in wanted if name not in available}
    keep = []
    for node in reversed(view.nodes):
        if any(out in needed for out in node.outputs if out):
            keep.append(node)
            needed.update(
                n
                for n in {*node.inputs, *node.subgraph_inputs}
                if n and n not in available and not view.is_constant(n)
            )
    return list(reversed(keep))


def _elem_types(model: ModelProto, names: set[str]) -> dict[str, int]:
    infos = {v.name: v for v in [*model.graph.value_info, *model.graph.output, *model.graph.input]}
    if any(name not in infos for name in names):
        inferred = onnx.shape_inference.infer_shapes(model)
        infos.update({v.name: v for v in inferred.graph.value_info})
    return {
        name: infos[name].type.tensor_type.elem_type or onnx.TensorProto.FLOAT
        if name in infos
        else onnx.TensorProto.FLOAT
        for name in names
    }


def segment_model(
    model: ModelProto, nodes: list, inputs: dict[str, int], outputs: dict[str, int]
) -> ModelProto:
    """A model of ``nodes`` whose graph inputs are ``inputs`` and outputs ``outputs`` (types)."""
    by_name = {node.name: node for node in model.graph.node}
    protos = [by_name[node.name] for node in nodes]
    used = {name for node in protos for name in node.input} | {
        name for node in nodes for name in node.subgraph_inputs
    }
    graph = helper.make_graph(
        protos,
        "segment",
        [helper.make_tensor_value_info(name, elem, None) for name, elem in inputs.items()],
        [helper.make_tensor_value_info(name, elem, None) for name, elem in outputs.items()],
        [init for init in model.graph.initializer if init.name in used],
    )
    segment = helper.make_model(graph, opset_imports=model.opset_import)
    segment.ir_version = model.ir_version
    segment.functions.extend(model.functions)
    return segment


class FrontierRunner:
    """Yield, batch by batch, tensors of successive versions of one model (module docstring)."""

    def __init__(self, samples: int | None, budget_bytes: float = 1 << 30) -> None:
        self.samples = samples
        self.budget = budget_bytes
        self.cache: dict[str, np.ndarray] | None = None
        self.done: set[str] = set()  # names of the nodes run so far

    def run(
        self, model: ModelProto, wanted: list[str], feeds: Iterable[dict[str, np.ndarray]]
    ) -> Iterator[dict[str, np.ndarray]]:
        """``{name: value}`` of ``wanted`` for each feed batch (same batches as ``feeds``)."""
        view = GraphView(model)
        graph_inputs = set(view.graph_inputs)
        cached = set(self.cache or ()) | graph_inputs
        nodes = _segment(view, wanted, cached if self.cache is not None else graph_inputs)
        done = self.done | {node.name for node in nodes}
        produced = {out for node in view.nodes if node.name in done for out in node.outputs}
        readers = {
            name
            for node in view.nodes
            if node.name not in done
            for name in {*node.inputs, *node.subgraph_inputs}
        }
        frontier = sorted(((produced | cached) & readers) - graph_inputs)
        inputs_needed = {
            n
            for node in nodes
            for n in {*node.inputs, *node.subgraph_inputs}
            if n and not view.is_constant(n) and n not in {o for m in nodes for o in m.outputs}
        }
        inputs_needed |= {name for name in wanted if name in cached}
        outputs = list(dict.fromkeys([*wanted, *frontier]))
        from_segment = [name for name in outputs if name not in cached]
        types = _elem_types(model, set(from_segment) | (inputs_needed - graph_inputs))
        session = None
        if from_segment:
            session = make_session(
                segment_model(
                    model,
                    nodes,
                    {name: types.get(name, _input_type(model, name)) for name in inputs_needed},
                    {name: types[name] for name in from_segment},
                )
            )
        keep = self.samples is not None
        kept: dict[str, list[np.ndarray]] = {name: [] for name in frontier}
        offset = 0
        for batch in feeds:
            size = next(iter(batch.values())).shape[0]
            given = dict(batch)
            for name in cached - graph_inputs:
                given[name] = self.cache[name][offset : offset + size]
            values = dict(given)
            if session is not None:
                run_inputs = {name: given[name] for name in inputs_needed}
                values.update(zip(from_segment, session.run(from_segment, run_inputs), strict=True))
            offset += size
            if keep:
                per_sample = sum(values[n].nbytes for n in frontier) / max(size, 1)
                keep = per_sample * self.samples <= self.budget and all(
                    values[n].ndim and values[n].shape[0] == size for n in frontier
                )
                for name in frontier if keep else ():
                    kept[name].append(values[name])
            yield {name: values[name] for name in wanted}
        if keep and offset == self.samples:
            self.cache = {name: np.concatenate(parts) for name, parts in kept.items()}
            self.done = done
        else:
            self.cache, self.done = None, set()


def _input_type(model: ModelProto, name: str) -> int:
    for value in model.graph.input:
        if value.name == name:
            return value.type.tensor_type.elem_type
    return onnx.TensorProto.FLOAT
