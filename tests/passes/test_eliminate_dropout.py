from onnx import helper

from tests.passes.helpers import check_preprocess, const, model, op_types


def test_inference_dropout_is_removed():
    nodes = [
        helper.make_node("Dropout", ["x", "ratio"], ["d"]),
        helper.make_node("Relu", ["d"], ["y"]),
    ]
    proto = model(nodes, [("x", ["N", 4])], [("y", ["N", 4])], [const("ratio", 0.5)])
    result = check_preprocess(proto, {"x": [3, 4]}, exact=True)
    assert op_types(result.model) == ["Relu"]
    assert result.applied["eliminate_dropout"] is True


def test_dropout_with_unused_mask_output_is_removed():
    nodes = [
        helper.make_node("Dropout", ["x"], ["d", "mask"]),
        helper.make_node("Relu", ["d"], ["y"]),
    ]
    proto = model(nodes, [("x", [2, 4])], [("y", [2, 4])])
    result = check_preprocess(proto, {"x": [2, 4]}, exact=True)
    assert op_types(result.model) == ["Relu"]


def test_dropout_with_used_mask_is_kept():
    nodes = [
        helper.make_node("Dropout", ["x"], ["d", "mask"]),
        helper.make_node("Relu", ["d"], ["y"]),
        helper.make_node("Cast", ["mask"], ["m"], to=1),
    ]
    proto = model(nodes, [("x", [2, 4])], [("y", [2, 4]), ("m", [2, 4])])
    result = check_preprocess(proto, {"x": [2, 4]}, exact=True)
    assert "Dropout" in op_types(result.model)


def test_dropout_in_training_mode_is_kept():
    nodes = [
        helper.make_node("Dropout", ["x", "", "training"], ["d"]),
        helper.make_node("Relu", ["d"], ["y"]),
    ]
    inits = [helper.make_tensor("training", 9, [], [True])]
    proto = model(nodes, [("x", [2, 4])], [("y", [2, 4])], inits)
    from onnxprune.passes import preprocess

    result = preprocess(proto)
    assert "Dropout" in op_types(result.model)
    assert result.applied["eliminate_dropout"] is False
