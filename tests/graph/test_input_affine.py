"""The affine map a model applies to an image input, read from the graph, and the pixel scale
the image loaders take from it."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from onnxprune.evaluate.data import calibration_data, load_data, model_input_specs
from onnxprune.graph.input_affine import expected_pixel_scale, image_pixel_scales, input_affine


def _chain_model(steps, layout="NHWC", second_reader=False):
    """x [N, 8, 8, 3] (NHWC) or [N, 3, 8, 8] → ``steps`` → (Transpose to NCHW) → Conv 3→2.
    ``steps``: (op, constant, constant_first) with constant a scalar or per-channel list.
    The chain's end is also a graph output 'chain' (so its values can be compared)."""
    nodes, inits, current = [], [], "x"
    shape = ["n", 8, 8, 3] if layout == "NHWC" else ["n", 3, 8, 8]
    channel_shape = [3] if layout == "NHWC" else [1, 3, 1, 1]
    for index, (op, value, constant_first) in enumerate(steps):
        value = np.asarray(value, np.float32)
        name = f"k{index}"
        inits.append(
            numpy_helper.from_array(value.reshape(channel_shape if value.size == 3 else []), name)
        )
        inputs = [name, current] if constant_first else [current, name]
        nodes.append(helper.make_node(op, inputs, [f"t{index}"], name=f"step{index}"))
        current = f"t{index}"
    if layout == "NHWC":
        nodes.append(helper.make_node("Transpose", [current], ["chain"], perm=[0, 3, 1, 2]))
    else:
        nodes.append(helper.make_node("Identity", [current], ["chain"]))
    weight = np.random.default_rng(0).normal(size=(2, 3, 1, 1)).astype(np.float32)
    inits.append(numpy_helper.from_array(weight, "w"))
    nodes.append(helper.make_node("Conv", ["chain", "w"], ["y"]))
    outputs = [
        helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 2, 8, 8]),
        helper.make_tensor_value_info("chain", TensorProto.FLOAT, ["n", 3, 8, 8]),
    ]
    if second_reader:
        nodes.append(helper.make_node("Relu", ["x"], ["side"]))
        outputs.append(helper.make_tensor_value_info("side", TensorProto.FLOAT, shape))
    graph = helper.make_graph(
        nodes,
        "chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        outputs,
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


KERAS = [  # Rescaling(1/255) then Normalization (mean, variance), as tf2onnx writes them
    ("Mul", 1 / 255, False),
    ("Add", [-0.485, -0.456, -0.406], False),
    ("Mul", [1 / 0.229, 1 / 0.224, 1 / 0.225], False),
]
MOBILENET = [("Div", 127.5, False), ("Sub", 1.0, False)]  # x / 127.5 - 1
CAFFE = [("Sub", [123.68, 116.78, 103.94], False)]  # mean subtraction only: [-124, 151]
TORCH_IN_GRAPH = [("Sub", [0.485, 0.456, 0.406], False), ("Div", [0.229, 0.224, 0.225], False)]
REVERSED = [("Sub", 255.0, True), ("Mul", 1 / 255, False)]  # (255 - x) / 255: inverted pixels


@pytest.mark.parametrize(
    "steps, layout",
    [(KERAS, "NHWC"), (MOBILENET, "NHWC"), (TORCH_IN_GRAPH, "NCHW"), (REVERSED, "NCHW")],
)
def test_composed_map_equals_the_graph(steps, layout):
    """a·x + b per channel reproduces what ONNX Runtime computes for the chain."""
    model = _chain_model(steps, layout)
    affine = input_affine(model, "x")
    assert affine is not None and len(affine.nodes) == len(steps)
    shape = (2, 8, 8, 3) if layout == "NHWC" else (2, 3, 8, 8)
    x = np.random.default_rng(1).uniform(0, 255, size=shape).astype(np.float32)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    chain = session.run(["chain"], {"x": x})[0]  # NCHW
    nchw = x.transpose(0, 3, 1, 2) if layout == "NHWC" else x
    per_channel = (1, -1, 1, 1)
    expected = affine.scale.reshape(per_channel) * nchw + affine.shift.reshape(per_channel)
    np.testing.assert_allclose(chain, expected, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize(
    "steps, layout, scale",
    [
        (KERAS, "NHWC", 1.0),
        (MOBILENET, "NHWC", 1.0),
        (REVERSED, "NCHW", 1.0),
        (CAFFE, "NHWC", None),  # 0-255 pixels, but not into a normalized range: no conclusion
        (TORCH_IN_GRAPH, "NCHW", None),  # normalizes [0, 1] input: 255 lands far outside
        ([], "NCHW", None),  # no chain: the graph says nothing
    ],
)
def test_raw_pixels_are_expected_only_when_the_graph_normalizes_them(steps, layout, scale):
    model = _chain_model(steps, layout)
    found, why = expected_pixel_scale(model, "x")
    assert found == scale
    assert ("normalizes its input 'x' itself" in why) == (scale is not None)


def test_a_branching_input_or_a_large_constant_ends_the_chain():
    assert input_affine(_chain_model(KERAS, second_reader=True), "x") is None
    model = _chain_model(MOBILENET)
    big = numpy_helper.from_array(np.full((8, 8, 3), 127.5, np.float32), "k0")  # not per channel
    model.graph.initializer[0].CopyFrom(big)
    assert input_affine(model, "x") is None
    assert image_pixel_scales(model) == {}


def _photo_folder(root, with_spec=None):
    root.mkdir()
    rng = np.random.default_rng(0)
    for index in range(2):
        pixels = rng.integers(100, 256, size=(8, 8, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / f"photo{index}.png")
    if with_spec is not None:
        (root / "preprocess.toml").write_text(with_spec)
    return root


def test_image_folder_feeds_raw_pixels_to_a_model_that_normalizes_them(tmp_path):
    """No preprocess.toml: a Keras-style model gets 0-255 pixels and a note saying why; a
    plain model keeps the [0, 1] default and the note asking for mean/std."""
    folder = _photo_folder(tmp_path / "photos")
    keras = _chain_model(KERAS)
    data = load_data(folder, model_input_specs(keras), pixel_scales=image_pixel_scales(keras))
    assert data.inputs["x"].max() > 100
    assert any("normalizes its input 'x' itself" in note for note in data.notes)
    assert not any("no mean/std" in note for note in data.notes)
    # the door of prune/sparsify reads the model's graph too
    assert calibration_data(str(folder), keras).inputs["x"].max() > 100
    plain = _chain_model([])
    data = load_data(folder, model_input_specs(plain), pixel_scales=image_pixel_scales(plain))
    assert data.inputs["x"].max() <= 1.0
    assert any("no mean/std" in note for note in data.notes)


@pytest.mark.parametrize(
    "spec, largest",
    [("scale = 0.5\n", 128.0), ("mean = [0.5, 0.5, 0.5]\nstd = [0.5, 0.5, 0.5]\n", 1.0)],
)
def test_a_spec_with_scale_or_mean_std_wins_over_the_graph(tmp_path, spec, largest):
    folder = _photo_folder(tmp_path / "photos", with_spec=spec)
    keras = _chain_model(KERAS)
    data = load_data(folder, model_input_specs(keras), pixel_scales=image_pixel_scales(keras))
    assert data.inputs["x"].max() <= largest
    assert not any("normalizes its input" in note for note in data.notes)


def test_constants_from_constant_nodes_count_too():
    """An exporter may write the scale as a Constant node (value_float) instead of an
    initializer: the chain reads it the same way."""
    model = _chain_model(MOBILENET)
    divisor = next(init for init in model.graph.initializer if init.name == "k0")
    model.graph.initializer.remove(divisor)
    model.graph.node.insert(0, helper.make_node("Constant", [], ["k0"], value_float=127.5))
    affine = input_affine(model, "x")
    assert affine is not None and affine.nodes == ["Div", "Sub"]
    np.testing.assert_allclose(affine.scale, [1 / 127.5])
    assert expected_pixel_scale(model, "x")[0] == 1.0


def test_inspect_notes_describe_the_graphs_own_preprocessing():
    """``inspect`` (the model summary) names the chain, the composed map, where pixels land
    and what the image loaders do; a model without a chain gets no such note."""
    from onnxprune.graph.input_affine import preprocessing_notes
    from onnxprune.stats import summarize

    (keras,) = preprocessing_notes(_chain_model(KERAS, "NHWC"))
    assert "(Mul, Add, Mul; a = [0.0171, 0.0175, 0.0174], b = [-2.12, -2.04, -1.8])" in keras
    assert "pixels 0–255 become [-2.12, 2.64]" in keras and "raw pixels (scale 1)" in keras
    (torch_style,) = preprocessing_notes(_chain_model(TORCH_IN_GRAPH, "NCHW"))
    assert "pixels 0–1 [-2.12, 2.64]" in torch_style and "concludes nothing" in torch_style
    assert preprocessing_notes(_chain_model([], "NCHW")) == []
    assert keras in summarize(_chain_model(KERAS, "NHWC")).notes
