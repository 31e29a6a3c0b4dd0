"""Attribute defaults written out where onnx's own inference fails without them.

Some standard ops are defined by a function body that reads an attribute through a reference;
when the node leaves that attribute to its default, onnx's shape inference of the body fails
(``MeanVarianceNormalization`` without ``axes``, opset 13: "One and only one of the attributes
'value', 'value_*' or 'sparse_value' must be specified for a Constant node"), so the loader's
strict inference rejected a model that the spec and ONNX Runtime accept. At load time such a
node gets the attribute with its documented default value, which changes nothing it computes.
"""

from __future__ import annotations

from onnx import ModelProto, helper

from onnxprune.io.legacy_ops import default_opset

# op type -> (first opset, attribute, default value) per the ONNX operator spec
DEFAULTS: dict[str, tuple[int, str, object]] = {
    "MeanVarianceNormalization": (9, "axes", [0, 2, 3]),
}


def write_explicit_defaults(model: ModelProto) -> int:
    """Add the documented default of each :data:`DEFAULTS` attribute a main-graph node of the
    default domain leaves out (at an opset where the op has it), in place; returns how many."""
    opset = default_opset(model)
    if opset is None:
        return 0
    added = 0
    for node in model.graph.node:
        entry = DEFAULTS.get(node.op_type)
        if entry is None or node.domain not in ("", "ai.onnx") or opset < entry[0]:
            continue
        _, name, value = entry
        if any(attribute.name == name for attribute in node.attribute):
            continue
        node.attribute.append(helper.make_attribute(name, value))
        added += 1
    return added
