"""ImageFolder loading: labels from sorted class folders or the model's declared class names,
preprocessing, bad folders."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from onnxprune.errors import InputError
from onnxprune.evaluate.data import load_data
from onnxprune.graph.class_names import ClassNames

SPECS = [("input", np.dtype(np.float32), ["batch", 3, 4, 4])]


def _folder(root, classes=(("cat", [(255, 0, 0), (0, 255, 0)]), ("dog", [(0, 0, 255)]))):
    for name, colours in classes:
        (root / name).mkdir(parents=True)
        for index, colour in enumerate(colours):
            Image.new("RGB", (6, 5), colour).save(root / name / f"{index}.png")
    return root


def test_labels_values_and_folder_config(tmp_path):
    root = _folder(tmp_path / "images")
    (root / "preprocess.toml").write_text("mean = [0.5, 0.5, 0.5]\nstd = [0.5, 0.5, 0.5]\n")
    data = load_data(root, SPECS)
    assert data.inputs["input"].shape == (3, 3, 4, 4)
    assert data.labels.tolist() == [0, 0, 1]
    # red -> (1 - 0.5) / 0.5 = 1 on R, (0 - 0.5) / 0.5 = -1 elsewhere
    assert np.allclose(data.inputs["input"][0, :, 0, 0], [1, -1, -1])
    assert np.allclose(data.inputs["input"][2, :, 2, 3], [-1, -1, 1])
    assert data.describe()["classes"] == 2
    assert any("2 classes" in n for n in data.notes)


def test_explicit_preprocess_nhwc_bgr(tmp_path):
    root = _folder(tmp_path / "images")
    specs = [("input", np.dtype(np.float32), [None, 4, 4, 3])]
    data = load_data(root, specs, preprocess={"channel_order": "BGR", "scale": 1})
    assert data.inputs["input"].shape == (3, 4, 4, 3)
    assert np.allclose(data.inputs["input"][0, 0, 0], [0, 0, 255])


def test_flat_folder_has_no_labels_and_dynamic_size_needs_a_size(tmp_path):
    Image.new("RGB", (8, 8), (1, 2, 3)).save(tmp_path / "a.jpg")
    (tmp_path / "notes.txt").write_text("ignored")
    data = load_data(tmp_path, SPECS)
    assert data.labels is None and len(data) == 1
    dynamic = [("input", np.dtype(np.float32), ["n", 3, "h", "w"])]
    with pytest.raises(InputError, match="dynamic image size"):
        load_data(tmp_path, dynamic)
    assert load_data(tmp_path, dynamic, preprocess={"crop": 4}).inputs["input"].shape == (
        1,
        3,
        4,
        4,
    )


def test_one_class_folder_is_read_as_unlabelled(tmp_path):
    root = _folder(tmp_path / "images", classes=(("all", [(255, 0, 0), (0, 255, 0)]),))
    data = load_data(root, SPECS)
    assert data.labels is None and len(data) == 2
    assert any("one class folder 'all': read as unlabelled" in note for note in data.notes)


def test_bad_folders(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="has no images"):
        load_data(tmp_path / "empty", SPECS)
    broken = tmp_path / "broken" / "cls"
    broken.mkdir(parents=True)
    (broken / "x.png").write_bytes(b"not an image")
    with pytest.raises(InputError, match="cannot read image"):
        load_data(tmp_path / "broken", SPECS)
    root = _folder(tmp_path / "ok")
    two = [*SPECS, ("other", np.dtype(np.float32), [None, 2])]
    with pytest.raises(
        InputError, match=r"has 2 \('input', 'other'\): give the values .*\[inputs\]"
    ):
        load_data(root, two)
    with pytest.raises(InputError, match="float or uint8 model input"):
        load_data(root, [("input", np.dtype(np.int64), [None, 3, 4, 4])])


def test_a_uint8_input_gets_raw_pixels_and_refuses_a_normalizing_spec(tmp_path):
    """TensorFlow exports often take uint8 NHWC images: the folder is fed as its 8-bit pixels
    (resampled values rounded), with a note; a spec that scales or normalizes is refused."""
    root = _folder(tmp_path / "photos")
    specs = [("image", np.dtype(np.uint8), ["batch", 4, 4, 3])]
    data = load_data(root, specs)
    pixels = data.inputs["image"]
    assert pixels.dtype == np.uint8 and pixels.shape == (3, 4, 4, 3)
    assert sorted({int(v) for v in np.unique(pixels)}) == [0, 255]  # the pure colours, unscaled
    assert any("is uint8: images are fed as raw pixels" in note for note in data.notes)
    for spec in ("scale = 0.5\n", "mean = [0.5, 0.5, 0.5]\nstd = [0.2, 0.2, 0.2]\n"):
        (root / "preprocess.toml").write_text(spec)
        with pytest.raises(InputError, match="is uint8, so it takes raw pixels"):
            load_data(root, specs)


def test_other_inputs_come_from_the_inputs_table(tmp_path):
    """A detector that takes the image and a per-image [2] vector (PaddleDetection's
    scale_factor): the folder's preprocess.toml gives the vector, the same for every image,
    typed and shaped as the input; a wrong count or an unknown name is one line."""
    root = _folder(tmp_path / "images")
    specs = [
        ("im_shape", np.dtype(np.float32), ["batch", 2]),
        ("image", np.dtype(np.float32), ["batch", 3, 4, 4]),
        ("scale_factor", np.dtype(np.float64), ["batch", 2]),
    ]
    (root / "preprocess.toml").write_text(
        "[inputs]\nim_shape = [4, 4]\nscale_factor = [0.5, 2.0]\n"
    )
    data = load_data(root, specs)
    assert data.inputs["image"].shape == (3, 3, 4, 4)
    assert data.inputs["scale_factor"].dtype == np.float64
    assert data.inputs["scale_factor"].tolist() == [[0.5, 2.0]] * 3
    assert data.inputs["im_shape"].tolist() == [[4.0, 4.0]] * 3
    assert any("scale_factor = [0.5, 2]" in note for note in data.notes)
    with pytest.raises(InputError, match=r"'scale_factor' has 3 value\(s\), the input takes \[2\]"):
        load_data(root, specs, preprocess={"inputs": {"im_shape": 4, "scale_factor": [1, 2, 3]}})
    one = load_data(root, specs, preprocess={"inputs": {"im_shape": 4, "scale_factor": 1}})
    assert one.inputs["im_shape"].tolist() == [[4.0, 4.0]] * 3  # one value fills the sample
    ints = [*specs[1:], ("im_shape", np.dtype(np.int64), ["batch", 2])]
    assert load_data(root, ints).inputs["im_shape"].tolist() == [[4, 4]] * 3
    with pytest.raises(
        InputError, match=r"'im_shape' is an integer input \(int64\): its values must be whole"
    ):
        load_data(root, ints, preprocess={"inputs": {"im_shape": [4.5, 4], "scale_factor": 1}})
    with pytest.raises(InputError, match="'scale', which is not a model input"):
        load_data(root, specs, preprocess={"inputs": {"scale": [1, 1]}})


ORIENTATIONS = ClassNames(("0", "90", "180", "270"), "metadata 'character'")


def test_class_folders_named_after_the_models_classes_take_its_order(tmp_path):
    colours = [(0, 0, 0), (85, 85, 85), (170, 170, 170), (255, 255, 255)]
    root = _folder(
        tmp_path / "images",
        classes=[(n, [c]) for n, c in zip(ORIENTATIONS.names, colours, strict=True)],
    )
    data = load_data(root, SPECS, class_names=ORIENTATIONS)
    # sorted folders are 0, 180, 270, 90: their images come in that order
    assert data.labels.tolist() == [0, 2, 3, 1]
    assert np.allclose(data.inputs["input"][:, 0, 0, 0] * 255, [0, 170, 255, 85], atol=1)
    assert any(
        "labelled by the model's own class names (metadata 'character'" in n for n in data.notes
    )
    plain = load_data(root, SPECS)  # no declaration: sorted order, and a note on the numbers
    assert plain.labels.tolist() == [0, 1, 2, 3]
    assert any("sorted text order" in n for n in plain.notes)


def test_folders_that_are_not_all_declared_names_keep_sorted_order_with_a_note(tmp_path):
    root = _folder(tmp_path / "images", classes=(("0", [(0, 0, 0)]), ("up", [(9, 9, 9)])))
    data = load_data(root, SPECS, class_names=ORIENTATIONS)
    assert data.labels.tolist() == [0, 1]
    assert any("1 are not (up)" in n for n in data.notes), data.notes


def test_one_folder_that_is_a_declared_class_is_labelled(tmp_path):
    root = _folder(tmp_path / "images", classes=(("180", [(1, 2, 3), (4, 5, 6)]),))
    assert load_data(root, SPECS, class_names=ORIENTATIONS).labels.tolist() == [2, 2]
    assert load_data(root, SPECS).labels is None


def test_numbered_folders_in_sorted_text_order_are_noted_only_when_the_orders_differ(tmp_path):
    few = _folder(tmp_path / "few", classes=[(str(i), [(i, i, i)]) for i in range(3)])
    assert not any("sorted text order" in n for n in load_data(few, SPECS).notes)
    many = _folder(tmp_path / "many", classes=[(str(i), [(i, i, i)]) for i in range(11)])
    data = load_data(many, SPECS)
    assert data.labels.tolist() == list(range(11))  # folders 0, 1, 10, 2, …: text order
    assert np.allclose(data.inputs["input"][2, 0, 0, 0] * 255, 10, atol=0.5)
    assert any("sorted text order" in n for n in data.notes)


def test_only_ascii_digit_folder_names_are_numbers(tmp_path):
    root = _folder(tmp_path / "odd", classes=(("²", [(1, 1, 1)]), ("3", [(2, 2, 2)])))
    data = load_data(root, SPECS)  # str.isdigit('²') is True; int('²') fails
    assert data.labels.tolist() == [0, 1]  # sorted folders: '3' < '²'
    assert np.allclose(data.inputs["input"][:, 0, 0, 0] * 255, [2, 1], atol=0.5)
