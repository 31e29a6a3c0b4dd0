"""``onnxprune optimize`` with its defaults on MediaPipe's TFLite models converted by tf2onnx.

Google's pretrained models inside the ``mediapipe`` 0.10.14 wheel (``mediapipe/modules``),
converted once to ONNX, outside this repo's environment (TensorFlow is not a dependency):

    pip download --no-deps mediapipe==0.10.14 -d wheels && unzip wheels/mediapipe-*.whl 'mediapipe/modules/*'
    python -m venv tfenv && tfenv/bin/pip install tensorflow-cpu tf2onnx
    tfenv/bin/python -m tf2onnx.convert --opset 17 \\
        --tflite mediapipe/modules/face_landmark/face_landmark.tflite --output DIR/face_landmark.onnx
    (the same for face_detection/face_detection_short_range and hand_landmark/hand_landmark_lite)

They test two things TFLite graphs do and exporters of PyTorch do not: residual streams
widened by a zero ``Pad`` of the channel axis (docs/ARCHITECTURE.md, "Zero channels widened by
Pad"), and regression outputs — landmark and box coordinates around a fixed layout — for which
the default guard is ``r2`` unless the output is an (N, C) matrix, which is read as class
scores (docs/ARCHITECTURE.md, "`r2` guards outputs that are mostly an offset"). Fixed batch 1,
NHWC.

Data: random-resized crops (``tools/bench_yolov8_third_party.crops``) of six skimage photos for
calibration (96) and of two others, with faces, for evaluation (64), in each model's input
range. For each model: ``optimize --target macs=0.8`` with every option default, and the same
with ``--metric r2`` and with ``--metric cosine`` (the guard before). The written model is
then compared with the original on the evaluation crops by measures no guard used: the mean
absolute error of the first output in its own unit (pixels for landmarks), its spread between
crops, and r2.

    python tools/bench_mediapipe.py DIR            # writes the mediapipe section
    python tools/bench_mediapipe.py DIR --no-write
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import bench_yolov8_third_party as photos  # noqa: E402
from _markdown import markdown_table, publish  # noqa: E402
from bench_tasks import _run_command  # noqa: E402

SECTION = "mediapipe"
CALIBRATION = ("coffee", "chelsea", "moon", "colorwheel", "clock", "rocket")
EVALUATION = ("astronaut", "camera")
# file: (input size, value range)
MODELS = {
    "face_detection_short_range": (128, (-1.0, 1.0)),
    "face_landmark": (192, (0.0, 1.0)),
    "hand_landmark_lite": (224, (0.0, 1.0)),
}
GUARDS = {"default": (), "r2": ("--metric", "r2"), "cosine": ("--metric", "cosine")}


def crops(names: tuple[str, ...], count: int, seed: int, size: int, low: float, high: float):
    photos.SIZE = size
    images, groups = photos.crops(names, count, seed)
    return (images.transpose(0, 2, 3, 1) * (high - low) + low).astype(np.float32), groups


def first_output(path: Path, images: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    rows = [session.run(None, {name: images[i : i + 1]})[0] for i in range(len(images))]
    return np.concatenate(rows).reshape(len(images), -1).astype(np.float64)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="the converted ONNX models")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    from onnxprune.evaluate.fidelity import explained_variance

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        for model, (size, (low, high)) in MODELS.items():
            path = args.folder / f"{model}.onnx"
            calibration, evaluation = work / f"{model}_cal.npz", work / f"{model}_eval.npz"
            images, groups = crops(CALIBRATION, 96, 1, size, low, high)
            np.savez(calibration, images=images, groups=groups)
            test, groups = crops(EVALUATION, 64, 2, size, low, high)
            np.savez(evaluation, images=test, groups=groups)
            reference = first_output(path, test)
            for guard, extra in GUARDS.items():
                out = work / f"{model}_{guard}.onnx"
                command = [
                    "onnxprune", "optimize", str(path), "--data", str(calibration), "--eval",
                    str(evaluation), "--target", "macs=0.8", "-o", str(out), "--report-json",
                    str(work / f"{model}_{guard}.json"), "--force", "--quiet", *extra,
                ]  # fmt: skip
                result = _run_command(command, model, work)
                report = result["report"]
                pruned = first_output(out, test)
                spread = float(np.abs(reference - reference.mean(axis=0)).mean())
                rows.append([
                    model, guard, report["metric_name"], result["exit"],
                    f"{report['macs_ratio']:.3f}",
                    f"{report['metric_before']:.4g} → {report['metric_after']:.4g}",
                    f"{np.abs(pruned - reference).mean():.2f} / {spread:.2f}",
                    f"{explained_variance(pruned, reference):.1f}",
                    f"{result['seconds']:.0f}",
                ])  # fmt: skip
    header = [
        "model", "guard", "guard metric", "exit", "MACs kept", "guard metric before → after",
        "first output: mean abs error / mean spread between crops", "first output r2 (%)",
        "wall s",
    ]  # fmt: skip
    body = "\n".join([
        "## MediaPipe TFLite models through tf2onnx: zero-padded residual streams and "
        "regression outputs",
        "",
        "Google's pretrained face detector (BlazeFace short range), face landmark (468 "
        "points) and hand landmark (lite) models from the `mediapipe` 0.10.14 wheel, "
        "converted by tf2onnx 1.17 at opset 17 (fixed batch 1, NHWC). `onnxprune optimize "
        "--target macs=0.8`, every other option default (`default`), with `--metric r2`, or "
        "with `--metric cosine` (the guard these outputs got before). 96 calibration crops of "
        f"{', '.join(CALIBRATION)}; 64 evaluation crops of {', '.join(EVALUATION)}; exit 3: "
        "the guard stopped before the target. The last columns compare the written model's "
        "first output with the original's on the evaluation crops (landmarks: pixels of the "
        "input crop).",
        "",
        markdown_table(header, rows),
        "",
        "Command: `python tools/bench_mediapipe.py DIR` (conversion: the module docstring).",
    ])  # fmt: skip
    publish(SECTION, body, not args.no_write)


if __name__ == "__main__":
    main()
