"""Graph outputs that are not tensors, replaced for measuring by the tensors they are made of.

skl2onnx and onnxmltools classifiers end in ``ZipMap`` (domain ``ai.onnx.ml``): it turns the
(N, C) probability tensor into a sequence of {class: probability} maps, which ONNX Runtime
returns as Python lists and no metric can compare. Before this, the guard refused such a model
("label metrics need class scores") and ``sparsify`` measured its output gains on no float
output at all (every gain 0, so one layer took 95 % of the zeros on an MLP). Measuring runs a
copy whose ZipMap outputs are the ZipMap inputs — the same probabilities as a float tensor;
the model that is written keeps its ZipMap.
"""

from __future__ import annotations

import onnx
from onnx import ModelProto, TensorProto, helper

#: (op type, domain) of the ops whose output is a non-tensor view of their input tensor
TENSOR_VIEWS = frozenset({("ZipMap", "ai.onnx.ml")})


def non_tensor_sources(model: ModelProto) -> dict[str, str]:
    """``{graph output: tensor it is a view of}`` for outputs computed by a :data:`TENSOR_VIEWS`
    op of the main graph."""
    outputs = {value.name for value in model.graph.output}
    return {
        node.output[0]: node.input[0]
        for node in model.graph.node
        if (node.op_type, node.domain) in TENSOR_VIEWS and node.output and node.output[0] in outputs
    }


def tensor_output_model(model: ModelProto) -> ModelProto:
    """``model`` itself when every output is a tensor, else a copy whose ZipMap outputs are
    the ZipMap inputs (in the same output position; one already an output is not repeated)
    and whose ZipMap nodes are gone."""
    sources = non_tensor_sources(model)
    if not sources:
        return model
    copy = ModelProto()
    copy.CopyFrom(model)
    graph = copy.graph
    kept = [
        node
        for node in graph.node
        if not ((node.op_type, node.domain) in TENSOR_VIEWS and node.output[0] in sources)
    ]
    del graph.node[:]
    graph.node.extend(kept)
    types = _inferred_types(model, set(sources.values()))
    names = {value.name for value in model.graph.output}
    outputs = []
    for value in model.graph.output:
        if value.name not in sources:
            outputs.append(value)
        elif sources[value.name] not in names:
            names.add(sources[value.name])
            source = sources[value.name]
            outputs.append(helper.make_value_info(source, types[source]))
    del graph.output[:]
    graph.output.extend(outputs)
    return copy


def _inferred_types(model: ModelProto, names: set[str]) -> dict[str, onnx.TypeProto]:
    """Type (element type and shape) of each tensor in ``names`` by ONNX shape inference; a
    float tensor of unknown shape when inference says nothing (the declared rank matters:
    gradient criteria read an [N, classes] output as class scores)."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model).graph
    except Exception:  # inference is only a source of types here
        inferred = model.graph
    found = {
        value.name: value.type
        for value in [*inferred.value_info, *inferred.output, *inferred.input]
        if value.name in names and value.type.tensor_type.elem_type
    }
    fallback = helper.make_tensor_type_proto(TensorProto.FLOAT, None)
    return {name: found.get(name, fallback) for name in names}


#: Element types a loss can be differentiated through.
FLOAT_ELEMENT_TYPES = frozenset(
    {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE, TensorProto.BFLOAT16}
)


def differentiable_outputs(model: ModelProto, what: str) -> list[str]:
    """Names of ``model``'s floating-point tensor outputs, in order (a classifier's int64
    label output, as skl2onnx puts it first, and ZipMap maps carry no gradient); an
    InputError naming ``what`` needs them when there is none."""
    names = [
        value.name
        for value in model.graph.output
        if value.type.WhichOneof("value") == "tensor_type"
        and value.type.tensor_type.elem_type in FLOAT_ELEMENT_TYPES
    ]
    if not names:
        from onnxprune.errors import InputError

        raise InputError(f"{what} needs a floating-point tensor output to differentiate; the "
                         "model has none")  # fmt: skip
    return names


def output_rank(model: ModelProto, name: str) -> int:
    """Declared rank of graph output ``name``."""
    value = next(value for value in model.graph.output if value.name == name)
    return len(value.type.tensor_type.shape.dim)
