"""A model's summary: metadata, interface, size, compute, op histogram, per-layer list."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field

from onnx import ModelProto, ValueInfoProto

from onnxprune.graph.input_affine import preprocessing_notes
from onnxprune.graph.shapes import elem_type_name
from onnxprune.io.tensors import element_count
from onnxprune.stats.inference import real_inputs
from onnxprune.stats.macs import count_macs
from onnxprune.stats.naming import node_names
from onnxprune.stats.params import count_params, param_tensors

Dim = int | str | None


@dataclass
class TensorInfo:
    """A graph input or output: name, element type name (``FLOAT``...) and shape.

    Shape entries are ints, symbolic names as in the model (``"batch"``), or None (unknown);
    ``shape`` is None when the rank is unknown.
    """

    name: str
    dtype: str
    shape: list[Dim] | None


@dataclass
class LayerInfo:
    """One Conv/ConvTranspose/Gemm/MatMul node: MACs (None if unresolved), parameters of its
    weight inputs, output shape at the counted input shapes."""

    name: str
    op_type: str
    macs: int | None
    params: int
    output_shape: list[int | None] | None


@dataclass
class ModelSummary:
    """What ``onnxprune inspect`` shows; ``to_dict()`` is its JSON form."""

    producer: dict[str, str]
    opset: dict[str, int]
    ir_version: int
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    params: int
    param_bytes: int
    macs: int
    ops: dict[str, int]
    layers: list[LayerInfo]
    nodes: int
    input_shapes: dict[str, list[int]]
    notes: list[str] = field(default_factory=list)
    macs_unknown: str | None = None  # why MACs are unknown (dynamic dims not given), or None

    def to_dict(self) -> dict:
        """JSON-ready dict with keys producer {name, version}, opset {domain: version},
        ir_version, inputs/outputs [{name, dtype, shape}], params, param_bytes, macs,
        ops {op: count}, layers [{name, op_type, macs, params, output_shape}], nodes,
        input_shapes (shapes MACs were counted at) and notes; with ``macs_unknown`` set (an
        input has dynamic dimensions after the batch axis that were not given) ``macs`` and
        every layer's ``macs`` and ``output_shape`` are null (they would be those of a size-1
        input) and ``macs_unknown`` says how to fix it."""
        data = asdict(self)
        if self.macs_unknown:
            data["macs"] = None
            for layer in data["layers"]:
                layer["macs"] = None
                layer["output_shape"] = None
        return data

    def top_layers(self, count: int | None) -> list[LayerInfo]:
        """Layers sorted by MACs (largest first); all of them when ``count`` is None or 0."""
        ordered = sorted(self.layers, key=lambda layer: layer.macs or 0, reverse=True)
        return ordered if not count else ordered[:count]


def tensor_info(value: ValueInfoProto) -> TensorInfo:
    """Name, dtype and shape (symbolic names kept) of a graph input or output."""
    type_ = value.type
    if not type_.HasField("tensor_type"):
        kind = type_.WhichOneof("value") or "unknown"
        return TensorInfo(value.name, kind.upper(), None)
    tensor_type = type_.tensor_type
    if not tensor_type.HasField("shape"):
        return TensorInfo(value.name, elem_type_name(tensor_type.elem_type), None)
    shape: list[Dim] = [
        d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else (d.dim_param or None)
        for d in tensor_type.shape.dim
    ]
    return TensorInfo(value.name, elem_type_name(tensor_type.elem_type), shape)


def op_histogram(model: ModelProto) -> dict[str, int]:
    """Main-graph node count per op type, most frequent first (ties by name); ops outside the
    default domain are written ``domain.OpType``."""
    counts = Counter(
        f"{node.domain}.{node.op_type}" if node.domain not in ("", "ai.onnx") else node.op_type
        for node in model.graph.node
    )
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def _layer_params(model: ModelProto) -> dict[str, int]:
    """Parameters read by each node (by display name), counting each of its param inputs."""
    sizes = {tensor.name: element_count(tensor) for tensor in param_tensors(model)}
    return {
        name: sum(sizes.get(input_name, 0) for input_name in node.input)
        for name, node in zip(node_names(model.graph), model.graph.node, strict=True)
    }


def summarize(model: ModelProto, input_shapes: dict[str, list[int]] | None = None) -> ModelSummary:
    """Summarize ``model``; MACs are counted at ``input_shapes`` (see ``count_macs``)."""
    macs = count_macs(model, input_shapes)
    params, param_bytes = count_params(model)
    layer_params = _layer_params(model)
    layers = [
        LayerInfo(n.name, n.op_type, n.macs, layer_params.get(n.name, 0), n.output_shape)
        for n in macs.nodes
    ]
    return ModelSummary(
        producer={"name": model.producer_name, "version": model.producer_version},
        opset={opset.domain or "ai.onnx": int(opset.version) for opset in model.opset_import},
        ir_version=int(model.ir_version),
        inputs=[tensor_info(value) for value in real_inputs(model.graph)],
        outputs=[tensor_info(value) for value in model.graph.output],
        params=params,
        param_bytes=param_bytes,
        macs=macs.total,
        ops=op_histogram(model),
        layers=layers,
        nodes=len(model.graph.node),
        input_shapes=macs.input_shapes,
        notes=[
            *(n for n in macs.notes if "was set to 1" not in n),
            *preprocessing_notes(model),
        ],
        macs_unknown=dynamic_dims_hint(model, input_shapes or {}),
    )


def dynamic_dims_hint(model: ModelProto, input_shapes: dict[str, list[int]]) -> str | None:
    """A hint naming the inputs whose dimensions after the batch axis are dynamic and not in
    ``input_shapes`` (MACs depend on them), or None when every such dimension is known."""
    from onnxprune.errors import input_shape_hint

    hints = []
    for value in real_inputs(model.graph):
        if value.name in input_shapes:
            continue
        dims = value.type.tensor_type.shape.dim
        texts = [
            str(d.dim_value)
            if d.HasField("dim_value") and d.dim_value > 0
            else (d.dim_param or "?")
            for d in dims
        ]
        if any(not (d.HasField("dim_value") and d.dim_value > 0) for d in list(dims)[1:]):
            hints.append(input_shape_hint(value.name, ", ".join(["1", *texts[1:]])))
    if not hints:
        return None
    return "dynamic input dimensions: give " + " and ".join(hints)
