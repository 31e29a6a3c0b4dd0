"""``onnxprune optimize`` on float32 models and on their float16 copies, side by side.

A float16 copy (``tests/half.py``: float16 initializers, inputs and outputs, what a float16
export looks like) runs the same defaults as its float32 original: gradients, inversion and
distillation on a float32 copy inside (docs/ARCHITECTURE.md, "Half precision"), the written
model float16. Digits models: ``--target macs=0.5``, calibration ``digits_calib.npz``, top-1 on
the labelled test split. With ``--effnet`` also EfficientNet-Lite2 (extra ``bench``) at
``macs=0.8`` on ``--calib`` crops of the calibration photos, scored by top-1 agreement with
the float32 original on 128 crops of the other photos (tools/effnet/crops.py).

    python tools/bench_half_precision.py [--effnet] [--recover lsq+distill] [--no-write]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

import numpy as np  # noqa: E402
from _markdown import markdown_table, publish  # noqa: E402

SECTION = "half-precision"
DIGITS = ROOT / "models" / "digits"


def _outputs(model, images: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    data = model.SerializeToString() if hasattr(model, "SerializeToString") else str(model)
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    dtype = np.float16 if "float16" in session.get_inputs()[0].type else np.float32
    return np.concatenate(
        [
            session.run(None, {name: images[i : i + 32].astype(dtype)})[0]
            for i in range(0, len(images), 32)
        ]
    ).astype(np.float32)


def cases(args, folder: Path):
    """(name, float32 path, target, calibration, evaluation images, labels or None)."""
    test = np.load(DIGITS / "digits_test.npz")
    calibration = dict(np.load(DIGITS / "digits_calib.npz"))
    for name in ("digits_vgg", "digits_mbv2"):
        yield name, DIGITS / f"{name}.onnx", "macs=0.5", calibration, test["input"], test["labels"]
    if args.effnet:
        from effnet.crops import CALIBRATION_PHOTOS, EVALUATION_PHOTOS, random_crops
        from effnet.model import RESOLUTION, export, load_pretrained

        path = export(load_pretrained(), folder / "lite2.onnx")
        crops = random_crops(CALIBRATION_PHOTOS, args.calib, seed=1, size=RESOLUTION)
        images = random_crops(EVALUATION_PHOTOS, 128, seed=2, size=RESOLUTION)
        yield "efficientnet_lite2", path, "macs=0.8", {"input": crops}, images, None


def measure(args) -> list[list[str]]:
    import onnx

    from onnxprune import optimize
    from tests.half import to_float16

    rows = []
    with tempfile.TemporaryDirectory(prefix="onnxprune-half-") as name:
        folder = Path(name)
        for model_name, path, target, calibration, images, labels in cases(args, folder):
            original = onnx.load(str(path))
            reference = _outputs(original, images).argmax(axis=1)
            for precision in ("float32", "float16"):
                model = original if precision == "float32" else to_float16(original)
                data = calibration
                if precision == "float16":
                    data = {k: v.astype(np.float16) if v.dtype == np.float32 else v
                            for k, v in calibration.items()}  # fmt: skip
                tick = time.perf_counter()
                result = optimize(model, target, data=data, recover=args.recover,
                                  measure_latency=False)  # fmt: skip
                seconds = time.perf_counter() - tick
                predicted = _outputs(result.model, images).argmax(axis=1)
                score = (
                    f"top-1 {100 * np.mean(predicted == labels):.2f} %"
                    if labels is not None
                    else f"agreement {100 * np.mean(predicted == reference):.1f} %"
                )
                types = sorted({init.data_type for init in result.model.graph.initializer
                                if init.data_type in (1, 10)})  # fmt: skip
                written = "/".join({1: "float32", 10: "float16"}[t] for t in types)
                rows.append([
                    model_name, precision, target, f"{result.report.macs_ratio:.3f}", score,
                    result.report.status, written, f"{seconds:.0f}",
                ])  # fmt: skip
                print(" | ".join(rows[-1]), flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--effnet", action="store_true", help="also EfficientNet-Lite2")
    parser.add_argument("--calib", type=int, default=128, help="EfficientNet calibration crops")
    parser.add_argument("--recover", default=None, help="optimize recovery (default: its own)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    rows = measure(args)
    header = ["model", "precision", "target", "MACs kept", "quality", "status",
              "written weights", "s"]  # fmt: skip
    command = (
        "python tools/bench_half_precision.py"
        + (" --effnet" if args.effnet else "")
        + (f" --calib {args.calib}" if args.effnet and args.calib != 128 else "")
        + (f" --recover {args.recover}" if args.recover else "")
    )
    body = (
        "### float32 vs float16 copies under `optimize`'s defaults\n\n"
        + markdown_table(header, rows)
        + "\n\nQuality: top-1 on the digits test split (labels), or top-1 agreement with the "
        "float32 original on 128 crops of other photos. s = wall time of `optimize` "
        "(2 shared CPU cores).\n\nCommand: `" + command + "`."
    )
    publish(SECTION + ("-" + args.recover.replace("+", "-") if args.recover else ""), body,
            not args.no_write)  # fmt: skip


if __name__ == "__main__":
    main()
