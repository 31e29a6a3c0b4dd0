"""A deterministic corpus of broken (and a few odd but valid) models and data files.

``model_cases(count, seed)`` and ``data_cases(count, seed)`` return lists of :class:`Case`;
the same arguments always give the same bytes. Every named mutation in :data:`MODEL_MUTATIONS`
and :data:`DATA_MUTATIONS` is applied once (in order) before the random ones (byte truncation,
byte flips, random attribute/dims/name edits) fill the rest, so the small default run still
covers every case the robustness issue lists. :func:`write_case` puts a case on disk (model,
external data file, data file) and returns the paths to pass to the CLI.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8
CLASSES = 5
SIZE = 8


@dataclass
class Case:
    """One corpus entry: a model (bytes) and optionally data (bytes) or side files."""

    name: str
    model: bytes
    data: bytes | None = None
    data_suffix: str = ".npz"
    side_files: dict[str, bytes] = field(default_factory=dict)
    heavy: bool = False  # a big model: inspect/prune only


# --- base models ---------------------------------------------------------------------------


def _weight(rng: np.random.Generator, name: str, shape, dtype=np.float32) -> TensorProto:
    return numpy_helper.from_array((rng.standard_normal(shape) * 0.3).astype(dtype), name)


def base_model(seed: int = 0) -> onnx.ModelProto:
    """x[N,3,8,8] -> Conv(8) -> Relu -> Conv(8) -> Relu -> GlobalAveragePool -> Flatten -> Gemm(5)."""
    rng = np.random.default_rng(seed)
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("GlobalAveragePool", ["r2"], ["p"], name="pool"),
        helper.make_node("Flatten", ["p"], ["f"], name="flatten", axis=1),
        helper.make_node("Gemm", ["f", "w3", "b3"], ["y"], name="fc", transB=1),
    ]
    inits = [
        _weight(rng, "w1", (8, 3, 3, 3)),
        _weight(rng, "b1", (8,)),
        _weight(rng, "w2", (8, 8, 3, 3)),
        _weight(rng, "b2", (8,)),
        _weight(rng, "w3", (CLASSES, 8)),
        _weight(rng, "b3", (CLASSES,)),
    ]
    graph = helper.make_graph(
        nodes,
        "fuzz_base",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", CLASSES])],
        inits,
    )
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION
    )


def base_data(samples: int = 24, seed: int = 0, *, labels: bool = True) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays = {"x": rng.standard_normal((samples, 3, SIZE, SIZE)).astype(np.float32)}
    if labels:
        arrays["labels"] = rng.integers(0, CLASSES, samples).astype(np.int64)
    return arrays


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _copy(model: onnx.ModelProto) -> onnx.ModelProto:
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    return copy


def _init(model: onnx.ModelProto, name: str) -> TensorProto:
    return next(init for init in model.graph.initializer if init.name == name)


def _node(model: onnx.ModelProto, name: str) -> onnx.NodeProto:
    return next(node for node in model.graph.node if node.name == name)


# --- named model mutations (each: base model -> broken model) --------------------------------

Mutation = Callable[[onnx.ModelProto, np.random.Generator], onnx.ModelProto]
MODEL_MUTATIONS: dict[str, Mutation] = {}


def mutation(name: str) -> Callable[[Mutation], Mutation]:
    def register(fn: Mutation) -> Mutation:
        MODEL_MUTATIONS[name] = fn
        return fn

    return register


@mutation("removed_initializer")
def _removed_initializer(m, rng):
    del m.graph.initializer[int(rng.integers(len(m.graph.initializer)))]
    return m


@mutation("cycle")
def _cycle(m, rng):
    _node(m, "relu1").input[0] = "r2"  # relu1 reads relu2's output, which depends on relu1
    return m


@mutation("self_loop")
def _self_loop(m, rng):
    _node(m, "relu1").input[0] = "r1"
    return m


@mutation("duplicate_tensor_name")
def _duplicate_tensor_name(m, rng):
    _node(m, "relu2").output[0] = "r1"
    _node(m, "pool").input[0] = "r1"
    return m


@mutation("duplicate_input_name")
def _duplicate_input_name(m, rng):
    m.graph.input.append(m.graph.input[0])
    return m


@mutation("duplicate_initializer")
def _duplicate_initializer(m, rng):
    m.graph.initializer.append(_init(m, "b1"))
    return m


@mutation("dangling_output")
def _dangling_output(m, rng):
    m.graph.output.append(helper.make_tensor_value_info("nowhere", TensorProto.FLOAT, [1]))
    return m


@mutation("empty_value_info_name")
def _empty_value_info_name(m, rng):
    m.graph.value_info.append(helper.make_tensor_value_info("", TensorProto.FLOAT, [1]))
    return m


@mutation("repeated_value_info")
def _repeated_value_info(m, rng):
    """Valid once merged: every annotation written twice, as onnxslim writes them."""
    entries = [
        helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", 8, 8, 8])
        for name in ("c1", "r1", "c2")
    ]
    m.graph.value_info.extend(entries + entries)
    return m


@mutation("conflicting_value_info")
def _conflicting_value_info(m, rng):
    """Valid once the disagreeing annotations of 'r1' are dropped (inference re-derives it)."""
    m.graph.value_info.extend([
        helper.make_tensor_value_info("r1", TensorProto.FLOAT, ["N", 8, 8, 8]),
        helper.make_tensor_value_info("r1", TensorProto.FLOAT, ["N", 8, 4, 4]),
        helper.make_tensor_value_info("c1", TensorProto.FLOAT, ["N", 8, 8, 8]),
    ])  # fmt: skip
    return m


@mutation("empty_output_name")
def _empty_output_name(m, rng):
    m.graph.output[0].name = ""
    return m


@mutation("undefined_input")
def _undefined_input(m, rng):
    _node(m, "relu2").input[0] = "ghost"
    return m


@mutation("cast_without_to")
def _cast_without_to(m, rng):
    node = _node(m, "relu1")
    node.op_type = "Cast"
    del node.attribute[:]
    return m


@mutation("concat_without_axis")
def _concat_without_axis(m, rng):
    node = _node(m, "relu1")
    node.op_type = "Concat"
    node.input.append("c1")
    return m


@mutation("unknown_op")
def _unknown_op(m, rng):
    _node(m, "relu1").op_type = "Relux"
    return m


@mutation("ir_version_1")
def _ir_1(m, rng):
    m.ir_version = 1
    return m


@mutation("ir_version_2")
def _ir_2(m, rng):
    m.ir_version = 2
    return m


@mutation("ir_version_99")
def _ir_99(m, rng):
    m.ir_version = 99
    return m


@mutation("opset_1")
def _opset_1(m, rng):
    m.opset_import[0].version = 1
    return m


@mutation("opset_99")
def _opset_99(m, rng):
    m.opset_import[0].version = 99
    return m


@mutation("no_opset_import")
def _no_opset(m, rng):
    del m.opset_import[:]
    return m


@mutation("mixed_float_conv")
def _mixed_float_conv(m, rng):
    init = _init(m, "w2")
    init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), "w2"))
    return m


@mutation("raw_data_short")
def _raw_data_short(m, rng):
    init = _init(m, "w2")
    init.raw_data = init.raw_data[: len(init.raw_data) // 2]
    return m


@mutation("raw_data_not_multiple")
def _raw_data_not_multiple(m, rng):
    init = _init(m, "w1")
    init.raw_data = init.raw_data[:-3]
    return m


@mutation("dims_mismatch")
def _dims_mismatch(m, rng):
    _init(m, "w3").dims[1] = 9
    return m


@mutation("negative_dims")
def _negative_dims(m, rng):
    _init(m, "b1").dims[0] = -8
    return m


@mutation("negative_input_dim")
def _negative_input_dim(m, rng):
    m.graph.input[0].type.tensor_type.shape.dim[1].dim_value = -3
    return m


@mutation("minus_one_batch")
def _minus_one_batch(m, rng):
    m.graph.input[0].type.tensor_type.shape.dim[0].dim_value = -1
    return m


@mutation("conv_channel_mismatch")
def _conv_channel_mismatch(m, rng):
    init = _init(m, "w2")
    init.CopyFrom(_weight(rng, "w2", (8, 5, 3, 3)))
    return m


@mutation("conv_bias_mismatch")
def _conv_bias_mismatch(m, rng):
    _init(m, "b2").CopyFrom(_weight(rng, "b2", (7,)))
    return m


@mutation("gemm_bias_wrong_shape")
def _gemm_bias_wrong_shape(m, rng):
    _init(m, "b3").CopyFrom(_weight(rng, "b3", (CLASSES + 2,)))
    return m


@mutation("gemm_inner_mismatch")
def _gemm_inner_mismatch(m, rng):
    _init(m, "w3").CopyFrom(_weight(rng, "w3", (CLASSES, 6)))
    return m


@mutation("nan_weights")
def _nan_weights(m, rng):
    init = _init(m, "w2")
    values = numpy_helper.to_array(init).copy()
    values.reshape(-1)[int(rng.integers(values.size))] = np.nan
    init.CopyFrom(numpy_helper.from_array(values, "w2"))
    return m


@mutation("inf_weights")
def _inf_weights(m, rng):
    init = _init(m, "w1")
    values = numpy_helper.to_array(init).copy()
    values.reshape(-1)[0] = np.inf
    init.CopyFrom(numpy_helper.from_array(values, "w1"))
    return m


@mutation("float_data_count")
def _float_data_count(m, rng):
    init = _init(m, "b1")
    values = numpy_helper.to_array(init)
    init.ClearField("raw_data")
    init.float_data.extend(values.tolist()[:-1])
    return m


@mutation("if_subgraph")
def _if_subgraph(m, rng):
    """Valid: relu1 moved into both branches of an If on a constant condition."""
    node = _node(m, "relu1")
    branch = helper.make_graph(
        [helper.make_node("Relu", ["c1"], ["r1_inner"])],
        "branch",
        [],
        [helper.make_tensor_value_info("r1_inner", TensorProto.FLOAT, None)],
    )
    m.graph.initializer.append(numpy_helper.from_array(np.array(True), "cond"))
    new = helper.make_node(
        "If", ["cond"], ["r1"], name="if", then_branch=branch, else_branch=branch
    )
    node.CopyFrom(new)
    return m


@mutation("broken_subgraph")
def _broken_subgraph(m, rng):
    m = _if_subgraph(m, rng)
    _node(m, "if").attribute[0].g.node[0].op_type = "Relux"
    return m


@mutation("custom_domain_op")
def _custom_domain_op(m, rng):
    """Valid ONNX that ONNX Runtime cannot run: a custom-domain op."""
    node = _node(m, "relu1")
    node.domain = "com.example"
    node.op_type = "MyRelu"
    m.opset_import.append(helper.make_opsetid("com.example", 1))
    return m


@mutation("nodes_out_of_order")
def _nodes_out_of_order(m, rng):
    """Valid once re-ordered: the node list reversed."""
    nodes = list(m.graph.node)[::-1]
    copies = []
    for node in nodes:
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        copies.append(copy)
    del m.graph.node[:]
    m.graph.node.extend(copies)
    return m


@mutation("input_int64")
def _input_int64(m, rng):
    m.graph.input[0].type.tensor_type.elem_type = TensorProto.INT64
    return m


@mutation("no_outputs")
def _no_outputs(m, rng):
    del m.graph.output[:]
    return m


@mutation("no_nodes")
def _no_nodes(m, rng):
    del m.graph.node[:]
    return m


@mutation("strides_zero")
def _strides_zero(m, rng):
    _node(m, "conv2").attribute.append(helper.make_attribute("strides", [0, 0]))
    return m


@mutation("group_zero")
def _group_zero(m, rng):
    _node(m, "conv2").attribute.append(helper.make_attribute("group", 0))
    return m


@mutation("group_mismatch")
def _group_mismatch(m, rng):
    _node(m, "conv2").attribute.append(helper.make_attribute("group", 3))
    return m


@mutation("sparse_initializer_bad_index")
def _sparse_bad_index(m, rng):
    values = numpy_helper.from_array(np.ones(2, np.float32), "b1")
    indices = numpy_helper.from_array(np.array([0, 99], np.int64), "b1_idx")
    del m.graph.initializer[[i.name for i in m.graph.initializer].index("b1")]
    m.graph.sparse_initializer.append(helper.make_sparse_tensor(values, indices, [8]))
    return m


def chain_model(length: int = 10_000) -> onnx.ModelProto:
    """conv1 -> ``length`` Relu nodes -> the rest of the base model (valid, deep)."""
    m = base_model()
    relu = _node(m, "relu1")
    relu.output[0] = "chain0"
    extra = [
        helper.make_node("Relu", [f"chain{i}"], [f"chain{i + 1}"], name=f"chain_{i}")
        for i in range(length - 1)
    ]
    extra[-1].output[0] = "r1"
    nodes = list(m.graph.node)
    position = nodes.index(relu) + 1
    del m.graph.node[:]
    m.graph.node.extend(nodes[:position] + extra + nodes[position:])
    return m


# --- external data -------------------------------------------------------------------------


def _external_case(name: str, location: str, offset: int, length: int) -> Case:
    m = base_model()
    init = _init(m, "w2")
    data = init.raw_data
    init.ClearField("raw_data")
    init.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", str(offset)), ("length", str(length))):
        entry = init.external_data.add()
        entry.key, entry.value = key, value
    return Case(name, m.SerializeToString(), side_files={"weights.bin": bytes(data)})


def external_cases() -> list[Case]:
    size = 8 * 8 * 3 * 3 * 4
    return [
        _external_case("external_valid", "weights.bin", 0, size),
        _external_case("external_outside_folder", "../weights.bin", 0, size),
        _external_case("external_absolute_path", "/etc/passwd", 0, size),
        _external_case("external_past_end", "weights.bin", 64, size),
        _external_case("external_missing_file", "missing.bin", 0, size),
        _external_case("external_wrong_length", "weights.bin", 0, size // 2),
    ]


# --- data mutations -------------------------------------------------------------------------


def _nan_data(rng):
    arrays = base_data()
    arrays["x"][int(rng.integers(24)), 0, 0, 0] = np.nan
    return npz_bytes(arrays)


def _inf_data(rng):
    arrays = base_data()
    arrays["x"][3, 1, 2, 2] = -np.inf
    return npz_bytes(arrays)


def _pickled_object_data(rng):
    arrays = base_data()
    buffer = io.BytesIO()
    np.savez(buffer, x=np.array([arrays["x"][0], "text"], dtype=object))
    return buffer.getvalue()


DATA_MUTATIONS: dict[str, Callable[[np.random.Generator], bytes]] = {
    "data_nan": _nan_data,
    "data_inf": _inf_data,
    "data_empty_array": lambda rng: npz_bytes({"x": np.zeros((0, 3, SIZE, SIZE), np.float32)}),
    "data_no_arrays": lambda rng: npz_bytes({}),
    "data_only_labels": lambda rng: npz_bytes({"labels": np.arange(4)}),
    "data_complex": lambda rng: npz_bytes({"x": base_data()["x"].astype(np.complex64)}),
    "data_strings": lambda rng: npz_bytes({"x": np.array([["a"] * 3] * 4)}),
    "data_object_pickle": _pickled_object_data,
    "data_int_input": lambda rng: npz_bytes(
        {"x": np.ones((6, 3, SIZE, SIZE), np.int64), "labels": np.zeros(6, np.int64)}
    ),
    "data_wrong_shape": lambda rng: npz_bytes({"x": np.zeros((6, 3, 4, 4), np.float32)}),
    "data_wrong_rank": lambda rng: npz_bytes({"x": np.zeros((6, 3), np.float32)}),
    "data_scalar": lambda rng: npz_bytes({"x": np.float32(1.0)}),
    "data_wrong_key": lambda rng: npz_bytes({**base_data(labels=False), "z": np.zeros((24, 2))}),
    "data_labels_short": lambda rng: npz_bytes({**base_data(labels=False), "labels": np.arange(5)}),
    "data_labels_fraction": lambda rng: npz_bytes(
        {**base_data(labels=False), "labels": np.linspace(0, 1, 24)}
    ),
    "data_labels_negative": lambda rng: npz_bytes(
        {**base_data(labels=False), "labels": -np.ones(24, np.int64)}
    ),
    "data_labels_nan": lambda rng: npz_bytes(
        {**base_data(labels=False), "labels": np.full(24, np.nan)}
    ),
    "data_labels_strings": lambda rng: npz_bytes(
        {**base_data(labels=False), "labels": np.array(["cat"] * 24)}
    ),
    "data_one_sample": lambda rng: npz_bytes(base_data(1)),
    "data_huge_values": lambda rng: npz_bytes({"x": np.full((8, 3, SIZE, SIZE), 1e300)}),
    "data_float32_extremes": lambda rng: npz_bytes(
        {**base_data(), "x": np.full((24, 3, SIZE, SIZE), 3e38, np.float32)}
    ),
    "data_constant_zero": lambda rng: npz_bytes(
        {**base_data(), "x": np.zeros((24, 3, SIZE, SIZE), np.float32)}
    ),
    "data_not_zip": lambda rng: b"this is not an npz archive",
    "data_truncated": lambda rng: npz_bytes(base_data())[:300],
    "data_npy_instead": lambda rng: _npy_bytes(base_data()["x"]),
    "data_pickle_file": lambda rng: pickle.dumps(base_data()),
    "data_empty_file": lambda rng: b"",
}


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


# --- random mutations -----------------------------------------------------------------------


def _truncate(blob: bytes, rng: np.random.Generator) -> bytes:
    return blob[: int(rng.integers(0, len(blob)))]


def _flip(blob: bytes, rng: np.random.Generator) -> bytes:
    data = bytearray(blob)
    for _ in range(int(rng.integers(1, 9))):
        position = int(rng.integers(len(data)))
        data[position] = int(rng.integers(256))
    return bytes(data)


def _random_proto_edit(m: onnx.ModelProto, rng: np.random.Generator) -> onnx.ModelProto:
    """One random structural edit: attribute drop/change, dims change, rename, input drop."""
    choice = int(rng.integers(6))
    node = m.graph.node[int(rng.integers(len(m.graph.node)))]
    if choice == 0 and node.attribute:
        del node.attribute[int(rng.integers(len(node.attribute)))]
    elif choice == 1 and node.attribute:
        attribute = node.attribute[int(rng.integers(len(node.attribute)))]
        if attribute.type == onnx.AttributeProto.INT:
            attribute.i = int(rng.choice([-1, 0, 2, 7, 1 << 40]))
        elif attribute.type == onnx.AttributeProto.INTS and attribute.ints:
            attribute.ints[int(rng.integers(len(attribute.ints)))] = int(rng.choice([-5, 0, 9]))
    elif choice == 2:
        init = m.graph.initializer[int(rng.integers(len(m.graph.initializer)))]
        if init.dims:
            init.dims[int(rng.integers(len(init.dims)))] = int(rng.choice([0, 1, 2, 100]))
    elif choice == 3 and node.input:
        node.input[int(rng.integers(len(node.input)))] = str(rng.choice(["", "x", "y", "w1"]))
    elif choice == 4 and node.output:
        node.output[0] = str(rng.choice(["x", "w1", "c1", "y", "new"]))
    else:
        dims = m.graph.input[0].type.tensor_type.shape.dim
        dims[int(rng.integers(len(dims)))].dim_value = int(rng.choice([0, 1, 2, 5]))
    return m


# --- the corpus -----------------------------------------------------------------------------


def model_cases(count: int, seed: int = 0) -> list[Case]:
    """``count`` model cases: the named mutations, external-data cases, then random ones."""
    rng = np.random.default_rng(seed)
    base = base_model(seed)
    blob = base.SerializeToString()
    cases = [Case("valid_base", blob)]
    for name, fn in MODEL_MUTATIONS.items():
        cases.append(Case(name, fn(_copy(base), rng).SerializeToString()))
    cases.extend(external_cases())
    index = 0
    while len(cases) < count:
        kind = index % 3
        if kind == 0:
            cases.append(Case(f"truncate_{index}", _truncate(blob, rng)))
        elif kind == 1:
            cases.append(Case(f"flip_{index}", _flip(blob, rng)))
        else:
            edited = _random_proto_edit(_copy(base), rng)
            cases.append(Case(f"edit_{index}", edited.SerializeToString()))
        index += 1
    return cases[:count] if count >= len(MODEL_MUTATIONS) else cases


def data_cases(count: int, seed: int = 0) -> list[Case]:
    """``count`` data cases on the valid base model: named mutations, then random byte damage."""
    rng = np.random.default_rng(seed + 1)
    model = base_model(seed).SerializeToString()
    cases = [Case("data_valid", model, npz_bytes(base_data()))]
    for name, fn in DATA_MUTATIONS.items():
        cases.append(Case(name, model, fn(rng)))
    good = npz_bytes(base_data())
    index = 0
    while len(cases) < count:
        damaged = _truncate(good, rng) if index % 2 == 0 else _flip(good, rng)
        cases.append(Case(f"data_damage_{index}", model, damaged))
        index += 1
    return cases


def write_case(case: Case, folder: Path) -> tuple[Path, Path | None]:
    """Write ``case`` into ``folder`` (model.onnx, side files, data) and return the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    model = folder / "model.onnx"
    model.write_bytes(case.model)
    for name, blob in case.side_files.items():
        (folder / name).write_bytes(blob)
    data = None
    if case.data is not None:
        data = folder / f"data{case.data_suffix}"
        data.write_bytes(case.data)
    return model, data
