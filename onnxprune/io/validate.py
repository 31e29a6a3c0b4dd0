"""Validate a loaded model once, at the door: every way it is not a usable ONNX graph is bad input.

:func:`validate_model` runs right after :func:`onnxprune.io.load_model` read the file (and its
external data). It raises :class:`~onnxprune.errors.ModelLoadError` with one line of the form
``invalid model 'PATH': <what>, at node 'X' / tensor 'Y'; <what to do>``. The checks, cheapest
first, each a function of its own (:data:`MODEL_CHECKS`):

* header — IR version >= 3 (older IR versions predate opset imports; ONNX Runtime rejects them);
* names — graph inputs, outputs, initializers and value_info have non-empty, unique names; no
  tensor is produced twice (SSA: a node output that is also a graph input, an initializer or
  another node's output); repeated ``value_info`` entries (annotations, which onnxslim writes
  twice) are merged in place instead of refused;
* topology — every node input is defined (graph input, initializer, an earlier node's output, or
  an outer-scope name for subgraphs); every graph output has a producer; no cycles. Kahn's
  algorithm (iterative) orders the nodes; an acyclic graph listed out of order is re-ordered
  (ONNX requires topological order, exporters sometimes do not write it);
* tensors — every tensor's data agrees with ``dims`` × element size (``raw_data`` length, or the
  count of typed values), no negative dims, sparse initializers' indices inside their dims;
  no NaN in floating-point initializers;
* schemas — every node of the default domain (and of ``ai.onnx.ml``) names an op that exists at
  the model's opset and carries its required attributes (``onnx.defs.get_schema``); nodes of
  other domains (custom ops) are legal and are not checked;
* onnx.checker (structure) and strict shape and type inference (mixed float types on one node,
  impossible shapes); unknown-but-legal shapes stay legal (strict mode fails only on conflicts);
* consistency that inference leaves unchecked — :data:`OP_CHECKS`, one function per op type:
  Conv input channels = weight channels × group; Gemm inner sizes and bias broadcastable.

Models whose proto is over 2 GB skip the checker and inference (they need the proto serialized);
every other check still runs. Nothing here calls ONNX Runtime.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator

import numpy as np
import onnx
from onnx import GraphProto, ModelProto, TensorProto, numpy_helper

from onnxprune.errors import ModelLoadError
from onnxprune.io.external_data import has_external_data
from onnxprune.io.tensors import element_bits, element_count, estimate_model_bytes, is_external

CHECKER_HINT = "run onnx.checker.check_model(model, full_check=True) and re-export the model"
_PROTO_LIMIT = 2**31 - 2**20
_BENIGN_CHECKER_MESSAGES = (
    "Field 'shape' of 'type' is required but missing",
    "Field 'name' of 'graph' is required",
)
SKELETON_TENSOR_BYTES = 4096  # initializers above this go to the checker as typed inputs

# Typed-data field of TensorProto that holds values of each element type (when not raw_data).
_TYPED_FIELDS: dict[int, str] = {
    TensorProto.FLOAT: "float_data",
    TensorProto.DOUBLE: "double_data",
    TensorProto.INT64: "int64_data",
    TensorProto.UINT64: "uint64_data",
    TensorProto.UINT32: "uint64_data",
    TensorProto.INT32: "int32_data",
    TensorProto.INT16: "int32_data",
    TensorProto.INT8: "int32_data",
    TensorProto.UINT16: "int32_data",
    TensorProto.UINT8: "int32_data",
    TensorProto.BOOL: "int32_data",
    TensorProto.FLOAT16: "int32_data",
    TensorProto.BFLOAT16: "int32_data",
    TensorProto.STRING: "string_data",
}
_COMPLEX = {TensorProto.COMPLEX64: "float_data", TensorProto.COMPLEX128: "double_data"}
_FLOAT_TYPES = {TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16, TensorProto.BFLOAT16}
_CHECKED_DOMAINS = ("", "ai.onnx", "ai.onnx.ml")


class _Invalid(Exception):
    """One validation failure: what, where, and what to do (joined into the one-line message)."""

    def __init__(self, what: str, where: str = "", todo: str = CHECKER_HINT) -> None:
        super().__init__(what)
        self.what, self.where, self.todo = what, where, todo


def invalid_model_error(label: str, what: str, where: str = "", todo: str = CHECKER_HINT):
    """The ModelLoadError of an invalid model, in the one-line form every check uses."""
    place = f", at {where}" if where else ""
    text = " ".join(f"invalid model '{label}': {what}{place}; {todo}".split())
    return ModelLoadError(text)


def validate_text(model: ModelProto, label: str) -> None:
    """:func:`check_text` alone, as a ModelLoadError: run before anything reads a name."""
    try:
        check_text(model)
    except _Invalid as failure:
        raise invalid_model_error(label, failure.what, failure.where, failure.todo) from None


def validate_model(model: ModelProto, label: str) -> None:
    """Raise ModelLoadError (one line) when ``model`` is not a usable ONNX model.

    ``model`` is the caller's own copy: a graph listed out of topological order is re-ordered
    in place and repeated ``value_info`` annotations are merged; nothing else is changed. ``label`` (the file path) is named in the message.
    """
    try:
        for check in MODEL_CHECKS:
            check(model)
    except _Invalid as failure:
        raise invalid_model_error(label, failure.what, failure.where, failure.todo) from None


def _node_label(node: onnx.NodeProto, index: int) -> str:
    return (
        f"node '{node.name}' ({node.op_type})" if node.name else f"node #{index} ({node.op_type})"
    )


def _default_opsets(model: ModelProto) -> dict[str, int]:
    opsets = {entry.domain or "": entry.version for entry in model.opset_import}
    if "ai.onnx" in opsets and "" not in opsets:
        opsets[""] = opsets["ai.onnx"]
    return opsets


# --- text -----------------------------------------------------------------------------------


def check_text(model: ModelProto) -> None:
    """Every string field of the model (names, op types, domains, external-data entries,
    metadata) is valid UTF-8 text.

    protobuf hands back ``bytes`` for a string field holding invalid UTF-8 (a flipped byte);
    every later step would fail on it with a TypeError. Iterative walk over all messages.
    """
    stack: list = [model]
    while stack:
        message = stack.pop()
        for field, value in message.ListFields():
            if field.type == field.TYPE_STRING:
                for text in value if _repeated(value) else (value,):
                    _text(text, f"field '{field.name}' of {message.DESCRIPTOR.name}")
            elif field.type == field.TYPE_MESSAGE:
                if _repeated(value):
                    stack.extend(value)
                else:
                    stack.append(value)


def _repeated(value: object) -> bool:
    return hasattr(value, "extend") or hasattr(value, "append")


def _text(value: object, what: str) -> None:
    if not isinstance(value, str):
        raise _Invalid(
            f"{what} is not valid UTF-8 text ({bytes(value)[:20]!r})",
            todo="the file is corrupt; re-export or re-download it",
        )


# --- header -------------------------------------------------------------------------------


def check_header(model: ModelProto) -> None:
    """IR version >= 3: older versions have no opset imports and ONNX Runtime rejects them."""
    if model.ir_version < 3:
        raise _Invalid(
            f"IR version {model.ir_version} is older than 3 (the first with opset imports)",
            todo="re-export the model with a current exporter",
        )


# --- names and topology ----------------------------------------------------------------------


def merge_value_info(graph: GraphProto) -> int:
    """Keep one ``value_info`` entry per tensor name, in place; returns how many were dropped.

    ``value_info`` only annotates the types and shapes of intermediate tensors; ONNX's checker
    and ONNX Runtime accept repeated entries, and onnxslim (which ultralytics runs on its
    exports) writes every annotation twice. Identical repeats collapse to the first entry; a
    name whose entries disagree loses all of them (shape inference derives it again).
    """
    entries: dict[str, list[onnx.ValueInfoProto]] = {}
    for value in graph.value_info:
        entries.setdefault(value.name, []).append(value)
    if all(len(found) == 1 for found in entries.values()):
        return 0
    kept = []
    for found in entries.values():
        first = found[0].SerializeToString(deterministic=True)
        if all(v.SerializeToString(deterministic=True) == first for v in found[1:]):
            kept.append(found[0])
    dropped = len(graph.value_info) - len(kept)
    del graph.value_info[:]
    graph.value_info.extend(kept)
    return dropped


def check_names(model: ModelProto) -> None:
    """Non-empty unique names on graph inputs/outputs/initializers; SSA outputs; repeated
    ``value_info`` entries merged in place (:func:`merge_value_info`)."""
    graph = model.graph
    merge_value_info(graph)
    for kind, values in (
        ("graph input", graph.input),
        ("graph output", graph.output),
        ("value_info entry", graph.value_info),
    ):
        seen: set[str] = set()
        for position, value in enumerate(values):
            if not value.name:
                raise _Invalid(f"{kind} #{position} has an empty name")
            if value.name in seen and kind != "graph output":
                raise _Invalid(f"duplicate {kind} name", f"tensor '{value.name}'")
            seen.add(value.name)
    seen = set()
    for position, init in enumerate(graph.initializer):
        if not init.name:
            raise _Invalid(f"initializer #{position} has an empty name")
        if init.name in seen:
            raise _Invalid("two initializers share one name", f"tensor '{init.name}'")
        seen.add(init.name)
    sources = {value.name for value in graph.input} | seen
    sources.update(sparse.values.name for sparse in graph.sparse_initializer)
    produced: set[str] = set()
    for index, node in enumerate(graph.node):
        for name in node.output:
            if not name:
                continue
            if name in sources:
                raise _Invalid(
                    "a node output has the name of a graph input or initializer",
                    f"{_node_label(node, index)} / tensor '{name}'",
                )
            if name in produced:
                raise _Invalid(
                    "a tensor is produced by two nodes (the graph is not in SSA form)",
                    f"{_node_label(node, index)} / tensor '{name}'",
                )
            produced.add(name)


def outer_scope_inputs(node: onnx.NodeProto) -> set[str]:
    """Names the subgraphs of ``node`` read from the enclosing scope (iterative walk)."""
    used: set[str] = set()
    stack: list[tuple[GraphProto, frozenset[str]]] = []
    for attribute in node.attribute:
        for graph in _attribute_graphs(attribute):
            stack.append((graph, frozenset()))
    while stack:
        graph, inherited = stack.pop()
        defined = set(inherited)
        defined.update(value.name for value in graph.input)
        defined.update(init.name for init in graph.initializer)
        defined.update(sparse.values.name for sparse in graph.sparse_initializer)
        for inner in graph.node:
            used.update(name for name in inner.input if name and name not in defined)
            for attribute in inner.attribute:
                for sub in _attribute_graphs(attribute):
                    stack.append((sub, frozenset(defined | set(inner.output))))
            defined.update(inner.output)
        used.update(value.name for value in graph.output if value.name not in defined)
    return used


def _attribute_graphs(attribute: onnx.AttributeProto) -> Iterator[GraphProto]:
    if attribute.HasField("g"):
        yield attribute.g
    yield from attribute.graphs


def check_topology(model: ModelProto) -> None:
    """Defined inputs, produced outputs, no cycle; re-order an acyclic graph listed out of order.

    Kahn's algorithm over the main graph (implicit subgraph inputs count as node inputs).
    """
    graph = model.graph
    available = {value.name for value in graph.input}
    available.update(init.name for init in graph.initializer)
    available.update(sparse.values.name for sparse in graph.sparse_initializer)
    producer: dict[str, int] = {}
    for index, node in enumerate(graph.node):
        for name in node.output:
            if name:
                producer[name] = index
    needs: list[set[str]] = []
    for index, node in enumerate(graph.node):
        inputs = {name for name in node.input if name}
        if any(
            attribute.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
            for attribute in node.attribute
        ):
            inputs |= outer_scope_inputs(node)
        for name in sorted(inputs):
            if name not in available and name not in producer:
                raise _Invalid(
                    f"input '{name}' is not defined (no graph input, initializer or node "
                    "output has that name)",
                    _node_label(node, index),
                )
        needs.append({name for name in inputs if name not in available})
    for value in graph.output:
        if value.name not in available and value.name not in producer:
            raise _Invalid("a graph output is produced by no node", f"tensor '{value.name}'")
    if _listed_in_order(needs, producer):
        return
    order = _kahn_order(graph, needs, producer)
    if len(order) < len(needs):
        done = set(order)
        stuck = next(index for index in range(len(needs)) if index not in done)
        raise _Invalid("the graph has a cycle", _node_label(graph.node[stuck], stuck))
    if order != list(range(len(graph.node))):
        nodes = [graph.node[index] for index in order]
        copies = [onnx.NodeProto() for _ in nodes]
        for copy, node in zip(copies, nodes, strict=True):
            copy.CopyFrom(node)
        del graph.node[:]
        graph.node.extend(copies)


def _listed_in_order(needs: list[set[str]], producer: dict[str, int]) -> bool:
    """True when every node's inputs are produced by earlier nodes (the common case)."""
    return all(producer[name] < index for index, need in enumerate(needs) for name in need)


def _kahn_order(graph: GraphProto, needs: list[set[str]], producer: dict[str, int]) -> list[int]:
    """Node indices in a topological order (the earliest listed ready node first); shorter than the node
    list when the graph has a cycle (the nodes on or after it are missing)."""
    waiting = [len(need) for need in needs]
    consumers: dict[str, list[int]] = {}
    for index, need in enumerate(needs):
        for name in need:
            consumers.setdefault(name, []).append(index)
    ready = [index for index, count in enumerate(waiting) if count == 0]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        index = heapq.heappop(ready)
        order.append(index)
        for name in graph.node[index].output:
            if not name or producer.get(name) != index:
                continue
            for consumer in consumers.get(name, ()):
                waiting[consumer] -= 1
                if waiting[consumer] == 0:
                    heapq.heappush(ready, consumer)
    return order


# --- tensors -----------------------------------------------------------------------------


def check_tensors(model: ModelProto) -> None:
    """Initializer and attribute tensors: dims >= 0, data size = dims × element size, no NaN."""
    graph = model.graph
    for tensor in graph.initializer:
        _check_tensor(tensor, f"tensor '{tensor.name}'", nan_check=True)
    for sparse in graph.sparse_initializer:
        _check_sparse(sparse)
    for index, node in enumerate(graph.node):
        for attribute in node.attribute:
            tensors = [attribute.t] if attribute.HasField("t") else []
            tensors.extend(attribute.tensors)
            for tensor in tensors:
                _check_tensor(tensor, f"attribute '{attribute.name}' of {_node_label(node, index)}")


def _check_tensor(tensor: TensorProto, where: str, nan_check: bool = False) -> None:
    if any(dim < 0 for dim in tensor.dims):
        raise _Invalid(f"negative dimension in dims {list(tensor.dims)}", where)
    if is_external(tensor):
        return  # sizes were checked when the external data was read
    count = element_count(tensor)
    data_type = tensor.data_type
    if tensor.HasField("raw_data") or tensor.raw_data:
        bits = element_bits(data_type)
        if bits is None:
            raise _Invalid(f"raw_data on a tensor of element type {data_type}", where)
        expected = (count * bits + 7) // 8
        if len(tensor.raw_data) != expected:
            raise _Invalid(
                f"raw_data holds {len(tensor.raw_data):,} bytes but dims {list(tensor.dims)} of "
                f"{_type_name(data_type)} need {expected:,}",
                where,
            )
    else:
        field = _TYPED_FIELDS.get(data_type) or _COMPLEX.get(data_type)
        if field is None:
            return  # sub-byte and 8-bit float types: values are packed, checked by onnx
        stored = len(getattr(tensor, field))
        expected = count * (2 if data_type in _COMPLEX else 1)
        if stored != expected and not (stored == 0 and count == 0):
            raise _Invalid(
                f"{field} holds {stored:,} values but dims {list(tensor.dims)} need {expected:,}",
                where,
            )
    if nan_check and data_type in _FLOAT_TYPES and count:
        values = numpy_helper.to_array(tensor)
        bad = np.flatnonzero(np.isnan(values.reshape(-1)))
        if bad.size:
            raise _Invalid(
                f"{bad.size:,} NaN weight values (first at flat index {int(bad[0])})",
                where,
                todo="re-export the model from trained weights",
            )


def _check_sparse(sparse: onnx.SparseTensorProto) -> None:
    where = f"sparse tensor '{sparse.values.name}'"
    if any(dim < 0 for dim in sparse.dims):
        raise _Invalid(f"negative dimension in dims {list(sparse.dims)}", where)
    _check_tensor(sparse.values, where)
    _check_tensor(sparse.indices, where)
    values = element_count(sparse.values)
    total = int(np.prod(list(sparse.dims), dtype=np.int64)) if sparse.dims else 1
    indices = numpy_helper.to_array(sparse.indices) if element_count(sparse.indices) else None
    if indices is None:
        if values:
            raise _Invalid("sparse values without indices", where)
        return
    flat = indices.reshape(-1) if indices.ndim == 1 else None
    if flat is None:
        if indices.shape != (values, len(sparse.dims)):
            raise _Invalid(f"sparse indices of shape {list(indices.shape)}", where)
        bounds = np.asarray(list(sparse.dims))
        if indices.size and (indices.min() < 0 or np.any(indices >= bounds)):
            raise _Invalid("sparse indices outside the tensor's dims", where)
        return
    if flat.size != values:
        raise _Invalid(f"{flat.size} sparse indices for {values} values", where)
    if flat.size and (flat.min() < 0 or flat.max() >= total):
        raise _Invalid("sparse indices outside the tensor's dims", where)


def _type_name(data_type: int) -> str:
    try:
        return TensorProto.DataType.Name(data_type).lower()
    except ValueError:
        return f"element type {data_type}"


# --- schemas -------------------------------------------------------------------------------


def check_schemas(model: ModelProto) -> None:
    """Default-domain (and ai.onnx.ml) ops exist at the model's opset and have required attrs."""
    opsets = _default_opsets(model)
    cache: dict[tuple[str, str], onnx.defs.OpSchema | None] = {}
    for index, node in enumerate(model.graph.node):
        domain = node.domain or ""
        if domain not in _CHECKED_DOMAINS:
            continue
        domain = "" if domain == "ai.onnx" else domain
        version = opsets.get(domain)
        if version is None:
            raise _Invalid(
                f"no opset import for domain '{domain or 'ai.onnx'}'", _node_label(node, index)
            )
        key = (node.op_type, domain)
        if key not in cache:
            try:
                cache[key] = onnx.defs.get_schema(node.op_type, version, domain)
            except onnx.defs.SchemaError:
                cache[key] = None
        schema = cache[key]
        if schema is None:
            raise _Invalid(
                f"unknown op '{node.op_type}' at opset {version} of domain '{domain or 'ai.onnx'}'",
                _node_label(node, index),
                todo="use a standard op, or put a custom op in its own domain",
            )
        present = {attribute.name for attribute in node.attribute}
        for name, attribute in schema.attributes.items():
            if attribute.required and name not in present:
                raise _Invalid(
                    f"required attribute '{name}' of {node.op_type} is missing",
                    _node_label(node, index),
                )


# --- onnx checker and strict inference ------------------------------------------------------


def check_with_onnx(model: ModelProto) -> None:
    """onnx.checker (structure), then strict shape/type inference and :data:`OP_CHECKS`."""
    model = weightless_skeleton(model)
    if estimate_model_bytes(model) >= _PROTO_LIMIT:
        return
    try:
        if not has_external_data(model):  # the checker resolves locations against the cwd
            onnx.checker.check_model(model)
    except onnx.checker.ValidationError as error:
        message = _first_line(str(error))
        if not _benign_checker_message(message):
            raise _Invalid(f"onnx.checker: {message}", _checker_context(str(error))) from None
    try:
        inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError) as error:
        raise _Invalid(f"shape inference: {_first_line(str(error))}") from None
    except (RuntimeError, ValueError) as error:  # inference of a custom function, etc.
        raise _Invalid(f"shape inference failed: {_first_line(str(error))}") from None
    shapes = _known_shapes(inferred)
    for index, node in enumerate(inferred.graph.node):
        check = OP_CHECKS.get(node.op_type) if (node.domain or "") in ("", "ai.onnx") else None
        if check is not None:
            problem = check(node, shapes)
            if problem:
                raise _Invalid(problem, _node_label(node, index))


def weightless_skeleton(model: ModelProto, max_bytes: int = SKELETON_TENSOR_BYTES) -> ModelProto:
    """A copy of ``model`` whose large (or external) initializers are graph inputs of the same
    type and shape (``model`` itself when there are none).

    Shape inference and the checker serialize the model; weights are most of its bytes and
    tell them nothing but their type and shape (their data sizes are checked by
    :func:`check_tensors`). Small initializers (shape vectors, scalars) stay, so inference
    still reads constant Reshape targets.
    """
    graph = model.graph
    large = [
        init for init in graph.initializer if is_external(init) or _inline_bytes(init) > max_bytes
    ]
    if not large:
        return model
    skeleton = _header_only(model)
    target = skeleton.graph
    for descriptor, value in graph.ListFields():
        if descriptor.name in ("initializer", "input"):
            continue
        _copy_field(target, descriptor.name, value)
    names = {init.name for init in large}
    target.initializer.extend(init for init in graph.initializer if init.name not in names)
    target.input.extend(graph.input)
    declared = {value.name for value in graph.input}
    for init in large:
        if init.name not in declared:
            target.input.append(
                onnx.helper.make_tensor_value_info(init.name, init.data_type, list(init.dims))
            )
    return skeleton


def _header_only(model: ModelProto) -> ModelProto:
    """``model`` without its graph (opset imports, functions, metadata kept)."""
    header = ModelProto()
    for descriptor, value in model.ListFields():
        if descriptor.name == "graph":
            continue
        _copy_field(header, descriptor.name, value)
    return header


def _copy_field(target, name: str, value) -> None:
    """Copy one set protobuf field (repeated, message or scalar) onto ``target``."""
    if hasattr(value, "extend"):
        getattr(target, name).extend(value)
    elif hasattr(value, "CopyFrom"):
        getattr(target, name).CopyFrom(value)
    else:
        setattr(target, name, value)


def _inline_bytes(tensor: TensorProto) -> int:
    return (
        len(tensor.raw_data)
        + 4 * (len(tensor.float_data) + len(tensor.int32_data))
        + 8 * (len(tensor.int64_data) + len(tensor.double_data) + len(tensor.uint64_data))
    )


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else "unknown error"


def _checker_context(text: str) -> str:
    """The 'Name: X OpType: Y' context the checker appends, as 'node X (Y)'."""
    marker = text.find("Name:")
    if marker < 0:
        return ""
    words = text[marker:].replace("\n", " ").split()
    name = words[1] if len(words) > 1 and words[1] != "OpType:" else ""
    op_type = words[words.index("OpType:") + 1] if "OpType:" in words[:-1] else "?"
    return f"node '{name}' ({op_type})" if name else f"a node ({op_type})"


def _benign_checker_message(message: str) -> bool:
    """Checker complaints ONNX Runtime accepts (not bad input): a graph input or output declared
    without a shape (unknown rank), a graph without a name."""
    return any(text in message for text in _BENIGN_CHECKER_MESSAGES)


def _known_shapes(model: ModelProto) -> dict[str, list[int | None]]:
    shapes: dict[str, list[int | None]] = {}
    graph = model.graph
    for value in (*graph.input, *graph.value_info, *graph.output):
        tensor_type = value.type.tensor_type
        if not tensor_type.HasField("shape"):
            continue
        shapes[value.name] = [
            dim.dim_value if dim.HasField("dim_value") and dim.dim_value > 0 else None
            for dim in tensor_type.shape.dim
        ]
    for init in graph.initializer:
        shapes[init.name] = [int(dim) for dim in init.dims]
    return shapes


def _conv_channels(node: onnx.NodeProto, shapes: dict[str, list[int | None]]) -> str | None:
    """Conv: input channels (axis 1 of X) = weight channels (axis 1 of W) × group."""
    if len(node.input) < 2:
        return None
    x, w = shapes.get(node.input[0]), shapes.get(node.input[1])
    group = next((attr.i for attr in node.attribute if attr.name == "group"), 1)
    if not x or not w or len(x) < 2 or len(w) < 2 or x[1] is None or w[1] is None:
        return None
    if x[1] != w[1] * group:
        return (
            f"input '{node.input[0]}' has {x[1]} channels but weight '{node.input[1]}' expects "
            f"{w[1]} × group {group} = {w[1] * group}"
        )
    if len(node.input) > 2 and node.input[2] and w[0] is not None:
        bias = shapes.get(node.input[2])
        if bias and bias != [w[0]]:
            return f"bias '{node.input[2]}' has shape {bias}, the weight has {w[0]} filters"
    return None


def _gemm_shapes(node: onnx.NodeProto, shapes: dict[str, list[int | None]]) -> str | None:
    """Gemm: inner sizes of A and B agree; C broadcasts to [M, N]."""
    attrs = {attr.name: attr.i for attr in node.attribute if attr.type == attr.INT}
    a, b = shapes.get(node.input[0]), shapes.get(node.input[1]) if len(node.input) > 1 else None
    if not a or not b or len(a) != 2 or len(b) != 2:
        return None
    m, k_a = (a[1], a[0]) if attrs.get("transA") else (a[0], a[1])
    k_b, n = (b[1], b[0]) if attrs.get("transB") else (b[0], b[1])
    if k_a is not None and k_b is not None and k_a != k_b:
        return f"inner sizes disagree: A '{node.input[0]}' has {k_a}, B '{node.input[1]}' {k_b}"
    c = shapes.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    if c is None or len(c) > 2:
        return None if c is None else f"bias '{node.input[2]}' has rank {len(c)} (at most 2)"
    for size, want in zip(reversed(c), (n, m), strict=False):
        if size is not None and want is not None and size not in (1, want):
            return (
                f"bias '{node.input[2]}' of shape {c} does not broadcast to the output "
                f"[M, N] = [{'?' if m is None else m}, {'?' if n is None else n}]"
            )
    return None


OpCheck = Callable[[onnx.NodeProto, dict[str, list[int | None]]], str | None]
OP_CHECKS: dict[str, OpCheck] = {"Conv": _conv_channels, "Gemm": _gemm_shapes}

MODEL_CHECKS: tuple[Callable[[ModelProto], None], ...] = (
    check_text,
    check_header,
    check_names,
    check_topology,
    check_tensors,
    check_schemas,
    check_with_onnx,
)


def iter_checks() -> Iterable[str]:
    """Names of the checks in the order they run (for docs and tests)."""
    return [check.__name__ for check in MODEL_CHECKS]
