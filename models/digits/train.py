"""Train the two digits classifiers on CPU and write the committed artifacts.

Run from anywhere as ``python models/digits/train.py`` (or ``python -m models.digits.train``
from the repository root). Writes next to this file (or to ``--out-dir``):
``digits_vgg.onnx``, ``digits_mbv2.onnx``, ``digits_test.npz``, ``digits_calib.npz`` and
``metrics.json`` (accuracies measured with onnxruntime on the exported files).
Deterministic: fixed seeds, 2 CPU threads, deterministic algorithms.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import platform
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn
from torch.nn import functional as F

if __package__:
    from . import data, nets
else:  # run as a script: import the sibling modules from this file's folder
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import data  # type: ignore[no-redef]
    import nets  # type: ignore[no-redef]

ARTIFACT_DIR = Path(__file__).resolve().parent
OPSET = 17
INPUT_NAME = "input"
OUTPUT_NAME = "logits"
NUM_THREADS = 2
MAX_SHIFT_PIXELS = 2.0


@dataclass(frozen=True)
class TrainConfig:
    """Optimizer schedule for one net: AdamW, one-cycle learning rate, cross-entropy."""

    epochs: int
    batch_size: int = 64
    max_lr: float = 3e-3
    weight_decay: float = 5e-4
    label_smoothing: float = 0.05


CONFIGS: dict[str, TrainConfig] = {
    "vgg": TrainConfig(epochs=20),
    "mbv2": TrainConfig(epochs=40, max_lr=5e-3),
}


def set_determinism(seed: int) -> None:
    """Seed torch and numpy, use NUM_THREADS CPU threads and deterministic algorithms."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    torch.set_num_threads(NUM_THREADS)
    torch.use_deterministic_algorithms(True)


def random_shift(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Translate every image by its own uniform random offset in [-MAX_SHIFT_PIXELS,
    MAX_SHIFT_PIXELS] pixels (x and y, bilinear resampling); uncovered pixels get the
    normalized background value (0 - MEAN) / STD."""
    count, _, height, width = batch.shape
    offsets = (torch.rand(count, 2, generator=generator) * 2.0 - 1.0) * MAX_SHIFT_PIXELS
    theta = torch.zeros(count, 2, 3)
    theta[:, 0, 0] = 1.0
    theta[:, 1, 1] = 1.0
    theta[:, 0, 2] = offsets[:, 0] * 2.0 / width  # affine_grid works in [-1, 1] coordinates
    theta[:, 1, 2] = offsets[:, 1] * 2.0 / height
    grid = F.affine_grid(theta, list(batch.shape), align_corners=False)
    background = (0.0 - data.MEAN) / data.STD
    shifted = F.grid_sample(batch - background, grid, mode="bilinear", align_corners=False)
    return shifted + background


def train_net(
    model: nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    config: TrainConfig,
    seed: int,
    name: str,
) -> float:
    """Train ``model`` in place (channels-last on CPU, which is many times faster for the
    depthwise convolutions) and return the training wall time in seconds."""
    generator = torch.Generator().manual_seed(seed)
    steps_per_epoch = math.ceil(len(inputs) / config.batch_size)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.max_lr, weight_decay=config.weight_decay
    )
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.max_lr, total_steps=config.epochs * steps_per_epoch
    )
    loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    model.to(memory_format=torch.channels_last).train()
    start = time.perf_counter()
    for epoch in range(config.epochs):
        order = torch.randperm(len(inputs), generator=generator)
        total_loss, correct = 0.0, 0
        for first in range(0, len(inputs), config.batch_size):
            rows = order[first : first + config.batch_size]
            batch = random_shift(inputs[rows], generator).contiguous(
                memory_format=torch.channels_last
            )
            logits = model(batch)
            loss = loss_fn(logits, labels[rows])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total_loss += float(loss) * len(rows)
            correct += int((logits.argmax(1) == labels[rows]).sum())
        print(
            f"  [{name}] epoch {epoch + 1:2d}/{config.epochs}  loss {total_loss / len(inputs):.4f}"
            f"  train acc (augmented) {correct / len(inputs):.4f}"
            f"  {time.perf_counter() - start:6.1f}s",
            flush=True,
        )
    seconds = time.perf_counter() - start
    model.to(memory_format=torch.contiguous_format).eval()
    return seconds


def export_onnx(model: nn.Module, path: Path, props: dict[str, str]) -> None:
    """Export eval-mode ``model`` with the TorchScript exporter (opset OPSET, BN folded,
    input "input" / output "logits", dynamic batch axis "batch"), then store ``props`` as
    model metadata and check the file."""
    example = torch.zeros(2, nets.IN_CHANNELS, data.INPUT_SIZE, data.INPUT_SIZE)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model,
            (example,),
            str(path),
            dynamo=False,
            opset_version=OPSET,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            do_constant_folding=True,
            training=torch.onnx.TrainingMode.EVAL,
        )
    proto = onnx.load(str(path))
    onnx.helper.set_model_props(proto, props)
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, str(path))


def onnx_accuracy(path: Path, inputs: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy of the ONNX model at ``path`` on (inputs, labels), onnxruntime CPU."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    logits = session.run([OUTPUT_NAME], {INPUT_NAME: inputs})[0]
    return float(np.mean(logits.argmax(axis=1) == labels))


def torch_accuracy(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy of eval-mode ``model`` on (inputs, labels)."""
    with torch.no_grad():
        return float((model(inputs).argmax(1) == labels).float().mean())


def sha256(path: Path) -> str:
    """Hex SHA-256 of the file at ``path``."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_data(splits: data.DigitsSplits, out_dir: Path, seed: int) -> dict[str, Any]:
    """Write digits_test.npz (whole test split) and digits_calib.npz (CALIB_SIZE training
    rows), keys ``input`` float32 [N,1,32,32] and ``labels`` int64 [N]; return their summary."""
    calib = data.calibration_rows(len(splits.train_labels), data.CALIB_SIZE, seed)
    np.savez_compressed(
        out_dir / "digits_test.npz", input=splits.test_inputs, labels=splits.test_labels
    )
    np.savez_compressed(
        out_dir / "digits_calib.npz",
        input=splits.train_inputs[calib],
        labels=splits.train_labels[calib],
    )
    return {
        "test": {"file": "digits_test.npz", "n": len(splits.test_labels), "split": "test"},
        "calib": {"file": "digits_calib.npz", "n": len(calib), "split": "train"},
    }


def train_and_export(
    key: str,
    splits: data.DigitsSplits,
    out_dir: Path,
    seed: int,
    epochs: int | None,
) -> dict[str, Any]:
    """Build, train, export ``digits_<key>.onnx`` and measure it; return its metrics entry."""
    config = CONFIGS[key]
    if epochs is not None:
        config = TrainConfig(**{**config.__dict__, "epochs": epochs})
    set_determinism(seed)
    model = nets.NETS[key]()
    n_params = sum(p.numel() for p in model.parameters())
    print(f"training {key}: {type(model).__name__}, {n_params} parameters, {config}", flush=True)
    train_inputs = torch.from_numpy(splits.train_inputs)
    train_labels = torch.from_numpy(splits.train_labels)
    seconds = train_net(model, train_inputs, train_labels, config, seed, key)
    test_inputs = torch.from_numpy(splits.test_inputs)
    torch_acc = torch_accuracy(model, test_inputs, torch.from_numpy(splits.test_labels))
    path = out_dir / f"digits_{key}.onnx"
    spec = data.preprocessing_spec()
    export_onnx(
        model,
        path,
        {
            "dataset": "sklearn.datasets.load_digits",
            "architecture": type(model).__name__,
            "preprocessing": json.dumps(spec, sort_keys=True),
        },
    )
    accuracy = onnx_accuracy(path, splits.test_inputs, splits.test_labels)
    print(
        f"{key}: trained in {seconds:.1f}s; test accuracy torch {torch_acc:.4f}, "
        f"onnxruntime {accuracy:.4f} ({path.name}, {path.stat().st_size / 1024:.0f} KiB)",
        flush=True,
    )
    return {
        "file": path.name,
        "sha256": sha256(path),
        "architecture": type(model).__name__,
        "parameters": n_params,
        "test_accuracy": accuracy,
        "test_accuracy_torch": torch_acc,
        "n_test": len(splits.test_labels),
        "seed": seed,
        "training_seconds": round(seconds, 1),
        "epochs": config.epochs,
        "optimizer": {**config.__dict__, "name": "AdamW + OneCycleLR"},
        "augmentation": f"random shift, uniform +-{MAX_SHIFT_PIXELS:g} px (32x32 scale)",
        "preprocessing": spec,
        "opset": OPSET,
        "exporter": "torch.onnx.export(dynamo=False)",
    }


def _sklearn_version() -> str:
    """Installed scikit-learn version (the split depends on it)."""
    import sklearn

    return str(sklearn.__version__)


def _parser() -> argparse.ArgumentParser:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out-dir", type=Path, default=ARTIFACT_DIR, help="output folder")
    parser.add_argument("--seed", type=int, default=data.SEED)
    parser.add_argument(
        "--models", nargs="+", choices=sorted(nets.NETS), default=list(nets.NETS), help="nets"
    )
    parser.add_argument("--epochs", type=int, default=None, help="override every net's epochs")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Regenerate the artifacts; prints progress and the final accuracies."""
    args = _parser().parse_args(argv)
    out_dir: Path = args.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    splits = data.load_splits(args.seed)
    print(
        f"digits: {len(splits.train_labels)} train / {len(splits.test_labels)} test "
        f"(stratified, seed {args.seed})",
        flush=True,
    )
    datasets = write_data(splits, out_dir, args.seed)
    models = {
        f"digits_{key}": train_and_export(key, splits, out_dir, args.seed, args.epochs)
        for key in args.models
    }
    metrics = {
        "dataset": "sklearn.datasets.load_digits",
        "split": {
            "method": "sklearn.model_selection.train_test_split(stratify=labels)",
            "test_fraction": data.TEST_FRACTION,
            "seed": args.seed,
            "n_train": len(splits.train_labels),
            "n_test": len(splits.test_labels),
        },
        "data": datasets,
        "models": models,
        "environment": {
            "torch": torch.__version__,
            "onnx": onnx.__version__,
            "onnxruntime": ort.__version__,
            "numpy": np.__version__,
            "scikit-learn": _sklearn_version(),
            "python": platform.python_version(),
            "threads": NUM_THREADS,
        },
        "total_seconds": round(time.perf_counter() - start, 1),
    }
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(f"wrote {out_dir} in {metrics['total_seconds']:.1f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
