"""Valid ranges of integer inputs read from the graph, and random values inside them."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper

from onnxprune.graph.input_ranges import InputRange, integer_input_ranges, random_integers
from tests.oracle import const, make_model


def _model():
    """ids -> Cast -> Gather(table[50, 4]); types -> Gather(table[2, 4]) and Gather(table[7, 4])
    (smallest wins); keep (no "mask" in the name) -> Sub(1, keep); other -> Identity only."""
    nodes = [
        helper.make_node("Cast", ["ids"], ["ids64"], to=TensorProto.INT64),
        helper.make_node("Gather", ["words", "ids64"], ["w"], name="word_lookup"),
        helper.make_node("Gather", ["types2", "types"], ["t2"], name="small_lookup"),
        helper.make_node("Gather", ["types7", "types"], ["t7"], name="big_lookup"),
        helper.make_node("Cast", ["keep"], ["keep_f"], to=TensorProto.FLOAT),
        helper.make_node("Sub", ["one", "keep_f"], ["inverted"], name="invert"),
        helper.make_node("Identity", ["other"], ["other_out"]),
    ]
    inputs = [
        helper.make_tensor_value_info(name, dtype, ["b", 5])
        for name, dtype in (
            ("ids", TensorProto.INT32),
            ("types", TensorProto.INT64),
            ("keep", TensorProto.INT64),
            ("other", TensorProto.INT64),
        )
    ]
    outputs = [
        helper.make_tensor_value_info(name, TensorProto.FLOAT, None)
        for name in ("w", "t2", "t7", "inverted")
    ] + [helper.make_tensor_value_info("other_out", TensorProto.INT64, None)]
    initializers = [
        const("words", np.zeros((50, 4), np.float32)),
        const("types2", np.zeros((2, 4), np.float32)),
        const("types7", np.zeros((7, 4), np.float32)),
        const("one", np.ones((), np.float32)),
    ]
    return make_model(nodes, inputs, outputs, initializers)


def test_ranges_come_from_tables_and_mask_use() -> None:
    ranges = integer_input_ranges(_model())
    assert (ranges["ids"].high, ranges["ids"].kind) == (50, "index")
    assert "word_lookup" in ranges["ids"].reason
    assert (ranges["types"].high, ranges["types"].kind) == (2, "index")
    assert (ranges["keep"].low, ranges["keep"].high, ranges["keep"].kind) == (0, 2, "mask")
    assert "invert" in ranges["keep"].reason
    assert (ranges["other"].high, ranges["other"].kind) == (10, "unknown")


def test_random_masks_are_padding_prefixes_and_indices_stay_in_range() -> None:
    rng = np.random.default_rng(0)
    mask = random_integers(rng, (64, 9), np.dtype(np.int64), InputRange(0, 2, "mask", ""))
    assert mask.dtype == np.int64 and set(np.unique(mask)) <= {0, 1}
    assert mask[:, 0].all()  # never a fully masked row
    assert (np.diff(mask, axis=1) <= 0).all()  # ones then zeros
    assert (mask.sum(axis=1) < 9).any()  # some padding happens
    ids = random_integers(rng, (64, 9), np.dtype(np.int32), InputRange(0, 3, "index", ""))
    assert ids.dtype == np.int32 and ids.min() >= 0 and ids.max() == 2


def test_an_8bit_image_gets_the_pixel_range_not_a_mask() -> None:
    """uint8 [N, H, W, 3] -> Cast -> Mul: arithmetic, yet an image (values 0-255)."""
    nodes = [
        helper.make_node("Cast", ["image"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["f", "one"], ["scaled"], name="rescale"),
    ]
    model = make_model(
        nodes,
        [helper.make_tensor_value_info("image", TensorProto.UINT8, ["b", 4, 4, 3])],
        [helper.make_tensor_value_info("scaled", TensorProto.FLOAT, None)],
        [const("one", np.ones((), np.float32))],
    )
    found = integer_input_ranges(model)["image"]
    assert (found.low, found.high, found.kind) == (0, 256, "pixels")
    values = random_integers(np.random.default_rng(0), (8, 4, 4, 3), np.dtype(np.uint8), found)
    assert values.max() > 200  # the whole 8-bit range, not [0, 10)
