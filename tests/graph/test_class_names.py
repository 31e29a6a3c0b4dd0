"""Declared class names: each reader's format, repeated names, models that declare nothing."""

from __future__ import annotations

import json

import numpy as np
import onnx
from onnx import TensorProto, helper

from onnxprune.graph.class_names import ClassNames, declared_class_names
from tests.evaluate.tiny import linear_model


def _with_metadata(**entries: str) -> onnx.ModelProto:
    model = linear_model(np.eye(3, dtype=np.float32))
    for key, value in entries.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    return model


def test_paddle_character_lines():
    found = declared_class_names(_with_metadata(character="0\n90\n180\n270\n"))
    assert found == ClassNames(("0", "90", "180", "270"), "metadata 'character'")


def test_ultralytics_names_dict_in_index_order():
    found = declared_class_names(_with_metadata(names="{1: 'bus', 0: 'person', 2: 'dog'}"))
    assert found == ClassNames(("person", "bus", "dog"), "metadata 'names'")
    assert declared_class_names(_with_metadata(names="{0: 'a', 2: 'b'}")) is None  # a gap
    assert declared_class_names(_with_metadata(names="not python")) is None


def test_json_list_under_the_usual_keys():
    found = declared_class_names(_with_metadata(class_names=json.dumps(["cat", "dog", 7])))
    assert found == ClassNames(("cat", "dog", "7"), "metadata 'class_names'")
    assert declared_class_names(_with_metadata(labels="{bad json")) is None


def test_zipmap_labels_of_an_sklearn_style_classifier():
    model = linear_model(np.eye(3, dtype=np.float32))
    model.graph.node.append(
        helper.make_node(
            "ZipMap", ["logits"], ["maps"], domain="ai.onnx.ml", classlabels_strings=["b", "a", "c"]
        )
    )
    model.graph.output.append(
        helper.make_value_info(
            "maps",
            helper.make_sequence_type_proto(
                helper.make_map_type_proto(TensorProto.STRING, helper.make_tensor_type_proto(1, []))
            ),
        )
    )
    assert declared_class_names(model) == ClassNames(("b", "a", "c"), "ZipMap classlabels_strings")


def test_repeated_or_missing_names_declare_nothing(tmp_path):
    assert declared_class_names(_with_metadata(character="a\nb\na")) is None
    assert declared_class_names(_with_metadata(author="me")) is None
    path = tmp_path / "m.onnx"
    onnx.save(_with_metadata(character="x\ny\nz"), path)
    assert declared_class_names(path).names == ("x", "y", "z")  # a file is read too
