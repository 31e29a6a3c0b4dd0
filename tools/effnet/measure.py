"""Equal counting and equal evaluation for every configuration of the benchmark.

MACs: every model (onnxprune output or Torch-Pruning export) is counted the same way, with
``onnxprune.stats.count_macs`` at batch 1 (Conv/Gemm/MatMul multiply-accumulates).

Agreement with the unpruned model, on the evaluation crops:
- top-1 agreement = mean over images of [argmax p(x) == argmax r(x)];
- top-5 containment = mean over images of [argmax r(x) ∈ top-5 of p(x)],
with r the unpruned model's logits and p the candidate's.
"""

from __future__ import annotations

import numpy as np
import onnx

INPUT = "input"
SHAPE = [1, 3, 260, 260]


def count_macs(model: onnx.ModelProto) -> int:
    """MACs of ``model`` at batch 1; fails when a node's shapes stay unknown."""
    from onnxprune.stats import count_macs as onnx_macs

    report = onnx_macs(model, {INPUT: SHAPE})
    if report.unresolved:
        raise RuntimeError(f"{len(report.unresolved)} node(s) without static shapes")
    return int(report.total)


def session(model: onnx.ModelProto, threads: int = 2):
    """A CPU onnxruntime session for ``model`` (``threads`` intra-op threads)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    return ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


def logits(model: onnx.ModelProto, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """Output 0 of ``model`` on ``images`` (N, 3, 260, 260), batch by batch.

    A model exported with a static batch of 1 is run image by image.
    """
    runner = session(model)
    first = runner.get_inputs()[0]
    batch = first.shape[0]
    if isinstance(batch, int) and batch > 0:
        batch_size = batch
    outputs = []
    for start in range(0, len(images), batch_size):
        outputs.append(runner.run(None, {first.name: images[start : start + batch_size]})[0])
    return np.concatenate(outputs)


def top1_agreement(candidate: np.ndarray, reference: np.ndarray) -> float:
    """Share of rows where the candidate's argmax equals the reference's argmax."""
    return float(np.mean(candidate.argmax(1) == reference.argmax(1)))


def top5_containment(candidate: np.ndarray, reference: np.ndarray) -> float:
    """Share of rows where the reference's argmax is among the candidate's 5 largest logits."""
    top5 = np.argsort(-candidate, axis=1)[:, :5]
    return float(np.mean((top5 == reference.argmax(1)[:, None]).any(1)))


def mean_kl(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Mean over rows of KL(softmax(reference) ‖ softmax(candidate)), in float64."""

    def log_softmax(x):
        shifted = x - x.max(axis=1, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))

    p, q = log_softmax(reference.astype(np.float64)), log_softmax(candidate.astype(np.float64))
    return float(np.mean(np.sum(np.exp(p) * (p - q), axis=1)))
