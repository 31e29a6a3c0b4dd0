"""The two statistics the default guard reads, on real models (docs/ARCHITECTURE.md, "`r2`
guards outputs that are mostly an offset"): the *varying share* of the score output
(``fidelity.varying_share``) and ``expected_top1``'s own noise floor under 1 % input noise
(``GuardEvaluator.noise.floor``), with the metric the default then picks.

Rows: the digits models on mixed test digits and on 16 images of one digit; EfficientNet-Lite2
(``tools/effnet/model.py``) on evaluation crops of four photos and on crops of one photo; with
``--mediapipe DIR`` (the tf2onnx conversions of ``tools/bench_mediapipe.py``) the face mesh,
hand, pose and iris landmark models and the palm detector on crops of two photos.

    python tools/probe_default_guard.py [--effnet effnet.onnx] [--mediapipe DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

MEDIAPIPE = {  # file: (input size, value range)
    "face_landmark": (192, (0.0, 1.0)),
    "hand_landmark_lite": (224, (0.0, 1.0)),
    "pose_landmark_full": (256, (0.0, 1.0)),
    "iris_landmark": (64, (0.0, 1.0)),
    "palm_detection_lite": (192, (0.0, 1.0)),
    "face_detection_short_range": (128, (-1.0, 1.0)),
}


def row(name: str, model, images: np.ndarray) -> str:
    import onnx

    from onnxprune.evaluate.data import Dataset
    from onnxprune.evaluate.fidelity import varying_share
    from onnxprune.evaluate.metrics import score_output_index
    from onnxprune.evaluate.runner import run_dataset
    from onnxprune.pipeline.evaluation import GuardEvaluator

    proto = onnx.load(str(model))
    feeds = {proto.graph.input[0].name: images}
    outputs = run_dataset(proto, Dataset(feeds, None, name))
    index = score_output_index(outputs.arrays)
    share = varying_share(outputs.arrays[index])
    asked = GuardEvaluator.create(proto, data=feeds, eval_data=feeds, metric="expected_top1")
    chosen = GuardEvaluator.create(proto, data=feeds, eval_data=feeds)
    shape = list(outputs.arrays[index].shape)
    return f"| {name} | {shape} | {share:.3f} | {asked.noise.floor:.3f} | {chosen.metric_name} |"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--effnet", type=Path, help="an EfficientNet-Lite2 export")
    parser.add_argument("--mediapipe", type=Path, help="folder of the converted models")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    print("| model, data | score output | varying share | expected_top1 floor (points) | default |")
    print("|---|---|---|---|---|")
    digits = np.load(ROOT / "models" / "digits" / "digits_test.npz")
    key = next(k for k in digits if k != "labels")
    for model in ("digits_vgg", "digits_mbv2"):
        path = ROOT / "models" / "digits" / f"{model}.onnx"
        print(row(f"{model}, 64 mixed digits", path, digits[key][:64].astype(np.float32)))
        one = digits[key][digits["labels"] == 3][:16].astype(np.float32)
        print(row(f"{model}, 16 images of digit 3", path, one))
    from effnet.crops import EVALUATION_PHOTOS, random_crops
    from effnet.model import export, load_pretrained

    with tempfile.TemporaryDirectory() as folder:
        effnet = args.effnet or export(load_pretrained(), Path(folder) / "effnet.onnx")
        mixed = random_crops(EVALUATION_PHOTOS, 128, seed=2, size=260)
        print(row("EfficientNet-Lite2, 128 crops of 4 photos", effnet, mixed))
        single = random_crops(("chelsea",), 64, seed=2, size=260)
        print(row("EfficientNet-Lite2, 64 crops of chelsea", effnet, single))
    if args.mediapipe:
        from bench_mediapipe import EVALUATION, crops

        for model, (size, (low, high)) in MEDIAPIPE.items():
            images, _ = crops(EVALUATION, 32, 2, size, low, high)
            print(row(f"{model}, 32 crops", args.mediapipe / f"{model}.onnx", images))


if __name__ == "__main__":
    main()
