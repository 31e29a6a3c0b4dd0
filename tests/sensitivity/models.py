"""A tiny two-branch classifier whose branches differ clearly in sensitivity.

x[N, 8] feeds two hidden layers of 16 units each: branch ``loud`` has weights ~ N(0, 1), branch
``quiet`` the same shapes scaled by 1e-3. Each branch ends in a 10-way Gemm; the logits are their
sum. Removing a quiet unit changes the logits by ~1e-3 of what a loud unit does, and both
branches remove the same MACs per unit.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from tests.oracle import const, make_model, tensor

HIDDEN = 16
FEATURES = 8
CLASSES = 10


def branch_weights(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    weights = {}
    for name, scale in (("loud", 1.0), ("quiet", 1e-3)):
        weights[f"{name}_w1"] = (scale * rng.standard_normal((HIDDEN, FEATURES))).astype(np.float32)
        weights[f"{name}_b1"] = (scale * rng.standard_normal(HIDDEN)).astype(np.float32)
        weights[f"{name}_w2"] = rng.standard_normal((CLASSES, HIDDEN)).astype(np.float32)
    return weights


def two_branch_model(seed: int = 0) -> onnx.ModelProto:
    weights = branch_weights(seed)
    nodes = []
    for name in ("loud", "quiet"):
        nodes += [
            helper.make_node(
                "Gemm",
                ["x", f"{name}_w1", f"{name}_b1"],
                [f"{name}_h"],
                name=f"{name}_fc1",
                transB=1,
            ),
            helper.make_node("Relu", [f"{name}_h"], [f"{name}_r"], name=f"{name}_relu"),
            helper.make_node(
                "Gemm", [f"{name}_r", f"{name}_w2"], [f"{name}_y"], name=f"{name}_fc2", transB=1
            ),
        ]
    nodes.append(helper.make_node("Add", ["loud_y", "quiet_y"], ["logits"], name="sum"))
    return make_model(
        nodes,
        [tensor("x", ["N", FEATURES])],
        [tensor("logits", ["N", CLASSES])],
        [const(k, v) for k, v in weights.items()],
    )


def forward(
    x: np.ndarray, weights: dict[str, np.ndarray], dropped: dict[str, list[int]]
) -> np.ndarray:
    """Numpy reference: logits with the listed hidden units of each branch removed."""
    logits = np.zeros((len(x), CLASSES), dtype=np.float64)
    for name in ("loud", "quiet"):
        keep = np.setdiff1d(np.arange(HIDDEN), dropped.get(name, []))
        hidden = x @ weights[f"{name}_w1"][keep].T.astype(np.float64) + weights[f"{name}_b1"][keep]
        logits += np.maximum(hidden, 0) @ weights[f"{name}_w2"][:, keep].T
    return logits


def calibration(samples: int = 64, seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"x": rng.standard_normal((samples, FEATURES)).astype(np.float32)}
