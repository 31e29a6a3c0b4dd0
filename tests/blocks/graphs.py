"""Hand-built residual graphs for the block tests (NCHW float32, 8 channels, 6x6)."""

from __future__ import annotations

import numpy as np
from onnx import helper

from tests.oracle import const, make_model, tensor, weights

C, H = 8, 6
SHAPE = ["N", C, H, H]


def conv(name: str, source: str, out: str, seed: int, scale: float = 1.0):
    """A 3x3 'same' Conv with bias: (node, [weight, bias])."""
    w = np.random.default_rng(seed).standard_normal((C, C, 3, 3)).astype(np.float32) * scale
    node = helper.make_node(
        "Conv", [source, f"{name}_w", f"{name}_b"], [out], name=name, pads=[1, 1, 1, 1]
    )
    b = np.random.default_rng(seed + 100).standard_normal(C).astype(np.float32) * scale
    return node, [const(f"{name}_w", w / 8), const(f"{name}_b", b)]


def residual_model(
    *,
    branch_first: bool = False,
    layer_scale: bool = False,
    shared_internal: bool = False,
    internal_output: bool = False,
    shape_change: bool = False,
    projection: bool = False,
    second_unit: bool = False,
    small_second: bool = False,
):
    """stem Conv -> x; y = x + f(x) with f = Conv-Relu-Conv (variants by flag); head Conv."""
    nodes, inits = [], []
    stem, stem_inits = conv("stem", "input", "x", 1)
    nodes.append(stem)
    inits += stem_inits
    c1, i1 = conv("f_conv1", "x", "f1", 2)
    relu = helper.make_node("Relu", ["f1"], ["f1r"], name="f_relu")
    c2, i2 = conv("f_conv2", "f1r", "f2", 3)
    nodes += [c1, relu, c2]
    inits += i1 + i2
    branch = "f2"
    if layer_scale:
        nodes.append(helper.make_node("Mul", ["f2", "gamma"], ["f2s"], name="f_scale"))
        inits.append(weights("gamma", [1, C, 1, 1], 4))
        branch = "f2s"
    if shape_change:
        nodes.append(helper.make_node("GlobalAveragePool", [branch], ["f2p"], name="f_pool"))
        branch = "f2p"
    identity = "x"
    if projection:
        p, ip = conv("proj", "x", "xp", 5)
        nodes.append(p)
        inits += ip
        identity = "xp"
    pair = [branch, identity] if branch_first else [identity, branch]
    nodes.append(helper.make_node("Add", pair, ["y"], name="add"))
    last = "y"
    if second_unit:
        g1, j1 = conv("g_conv1", "y", "g1", 6, scale=1e-3 if small_second else 1.0)
        nodes += [g1, helper.make_node("Add", ["y", "g1"], ["y2"], name="add2")]
        inits += j1
        last = "y2"
    head, head_inits = conv("head", last, "out", 7)
    nodes.append(head)
    inits += head_inits
    outputs = [tensor("out", SHAPE)]
    if shared_internal:
        nodes.append(helper.make_node("Relu", ["f1r"], ["side"], name="side"))
        outputs.append(tensor("side", SHAPE))
    if internal_output:
        outputs.append(tensor("f1", SHAPE))
    return make_model(nodes, [tensor("input", SHAPE)], outputs, inits)


def calibration_feeds(samples: int = 16, seed: int = 1) -> dict[str, np.ndarray]:
    """Seeded standard-normal inputs for :func:`residual_model` (input shape (8, 6, 6))."""
    rng = np.random.default_rng(seed)
    return {"input": rng.standard_normal((samples, 8, 6, 6)).astype(np.float32)}
