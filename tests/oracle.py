"""Test utilities: the mask-equivalence oracle and tiny-graph builders."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from onnxprune.analysis import ChannelAnalysis
from onnxprune.graph.input_ranges import integer_input_ranges, random_integers
from onnxprune.rewrite import apply_removal, check_model, masked_model


def session(model: onnx.ModelProto) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 4  # errors come back as exceptions (see _masked_outputs)
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


def random_feeds(model: onnx.ModelProto, batch: int = 2, seed: int = 0) -> dict[str, np.ndarray]:
    """Every dynamic dim = ``batch``; floats standard normal (float32), integer inputs in the
    range the model accepts (token ids below the table size, 0/1 masks)."""
    rng = np.random.default_rng(seed)
    initializers = {i.name for i in model.graph.initializer}
    ranges = integer_input_ranges(model)
    feeds = {}
    for value in model.graph.input:
        if value.name in initializers:
            continue
        dims = [
            d.dim_value if d.HasField("dim_value") else batch
            for d in value.type.tensor_type.shape.dim
        ]
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type))
        if np.issubdtype(dtype, np.integer):
            feeds[value.name] = random_integers(rng, tuple(dims), dtype, ranges[value.name])
        else:
            feeds[value.name] = rng.standard_normal(dims).astype(np.float32)
    return feeds


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / (np.abs(b).max() + 1e-12))


def free_clusters(analysis: ChannelAnalysis) -> list[np.ndarray]:
    return [g.clusters[~g.blocked] for g in analysis.groups if g.prunable]


def random_removal(analysis: ChannelAnalysis, seed: int = 0, share: float = 0.5) -> set[int]:
    """A random subset of free clusters, every group keeping at least one cluster."""
    rng = np.random.default_rng(seed)
    removed: set[int] = set()
    for group in analysis.groups:
        if not group.prunable:
            continue
        free = group.clusters[~group.blocked]
        count = min(int(np.ceil(share * len(free))), group.size - 1)
        removed.update(int(c) for c in rng.choice(free, size=count, replace=False))
    for clusters in analysis.min_keep:
        if clusters.size and all(int(c) in removed for c in clusters):
            removed.discard(int(clusters[0]))
    return removed


def assert_mask_equivalent(
    analysis: ChannelAnalysis, removed, feeds=None, tol: float = 1e-5
) -> onnx.ModelProto:
    """Prune ``removed``; assert the checker passes and outputs equal the masked original."""
    pruned = apply_removal(analysis, removed)
    check_model(pruned)
    masked = masked_model(analysis, removed)
    feeds = feeds or random_feeds(analysis.model)
    got = session(pruned).run(None, feeds)
    want = _masked_outputs(session(masked), feeds)
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape
        assert relative_error(g, w) <= tol, relative_error(g, w)
    return pruned


def _masked_outputs(masked_session, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The masked model's outputs; sample by sample when the batched run fails. The masks
    are laid out at the analysis's batch (1): where an export merges batch and heads into one
    axis ([B·H, T, d], DeBERTa), a mask over that axis only fits one sample at a time, while
    the pruned model runs at any batch."""
    try:
        return masked_session.run(None, feeds)
    except Exception:  # ONNX Runtime's broadcast error: compare per sample
        batch = len(next(iter(feeds.values())))
        parts = [
            masked_session.run(None, {k: v[i : i + 1] for k, v in feeds.items()})
            for i in range(batch)
        ]
        return [np.concatenate(outputs) for outputs in zip(*parts, strict=True)]


def prove_random_removals(analysis: ChannelAnalysis, seeds: int = 2, tol: float = 1e-4) -> str:
    """``"ok"`` when ``seeds`` random removals (:func:`random_removal`) are mask-equivalent on
    random feeds, else ``"FAILS (...)"`` with the first error (for the coverage tools)."""
    try:
        for seed in range(seeds):
            assert_mask_equivalent(
                analysis, random_removal(analysis, seed=seed),
                feeds=random_feeds(analysis.model, 2, seed), tol=tol,
            )  # fmt: skip
    except AssertionError as error:
        return f"FAILS ({str(error)[:120]})"
    return "ok"


def const(name: str, value) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value), name)


def weights(name: str, shape, seed: int) -> onnx.TensorProto:
    return const(name, np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


def make_model(nodes, inputs, outputs, initializers, opset: int = 17) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializers)
    domains = sorted({n.domain for n in nodes if n.domain not in ("", "ai.onnx")})
    opsets = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, 1) for d in domains]
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    return onnx.shape_inference.infer_shapes(model)


def tensor(name: str, shape) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)
