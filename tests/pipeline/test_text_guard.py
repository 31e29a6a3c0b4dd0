"""The guard on a text encoder: embedding cosine by default, in-range ids, latency on data."""

from __future__ import annotations

import numpy as np
import pytest

from onnxprune.graph.input_ranges import integer_input_ranges
from onnxprune.pipeline.evaluation import GuardEvaluator


@pytest.fixture(scope="module")
def bert(zoo_onnx):
    import onnx

    return onnx.load(zoo_onnx("bert", "dynamo"))


def _ids(model, n=12, length=16, seed=0):
    rng = np.random.default_rng(seed)
    feeds = {}
    ranges = integer_input_ranges(model)
    for value in model.graph.input:
        high = ranges[value.name].high if value.name in ranges else 2
        feeds[value.name] = rng.integers(0, high, size=(n, length)).astype(np.int64)
    return feeds


def test_text_encoder_guard_defaults_to_embedding_cosine_and_times_on_data(bert):
    evaluator = GuardEvaluator.create(bert, eval_data=_ids(bert))
    assert evaluator.metric_name == "embedding_cosine"
    assert evaluator.guard.max_drop == pytest.approx(max(0.01, 2 * evaluator.guard.noise.floor))
    assert evaluator.baseline == pytest.approx(1.0, abs=1e-6)
    assert evaluator._time_on_data()
    assert evaluator.latency(bert) > 0


def test_synthetic_text_inputs_stay_in_range(bert):
    evaluator = GuardEvaluator.create(bert, input_shapes={n.name: [1, 8] for n in bert.graph.input})
    ranges = integer_input_ranges(bert)
    for name, array in evaluator.evaluation.inputs.items():
        if name in ranges:
            assert array.min() >= ranges[name].low and array.max() < ranges[name].high


def test_embedding_metrics_name_the_mse_distillation_loss(bert):
    evaluator = GuardEvaluator.create(bert, eval_data=_ids(bert))
    assert evaluator.metric.distill_loss == "mse"
    from onnxprune.evaluate.registry import get_metric

    assert get_metric("retrieval").distill_loss == "mse"
    assert get_metric("top1").distill_loss == "kl"


def _short_distillation(monkeypatch) -> list[str]:
    """Distillation cut to 4 steps; the returned list collects the loss name of each call."""
    from onnxprune.recover import distill as distill_module

    seen: list[str] = []
    original_distill = distill_module.distill

    def spy(*args, **kwargs):
        seen.append(kwargs["loss"])
        return original_distill(*args, **{**kwargs, "steps": 4, "eval_every": 2})

    monkeypatch.setattr(distill_module, "distill", spy)
    return seen


@pytest.mark.parametrize(
    ("exporter", "plan_options", "loss"),
    [
        ("torchscript", None, "mse"),
        ("dynamo", None, "mse"),
        ("dynamo", {"distill_loss": "embedding_cosine"}, "embedding_cosine"),
    ],
)
def test_optimize_distills_a_text_encoder_on_its_hidden_states(
    zoo_onnx, exporter, plan_options, loss, monkeypatch
):
    """The embedding guard's own loss (squared error of the hidden states), or the one the
    kind option ``distill_loss`` names (the mask-pooled sentence embeddings' cosine)."""
    import onnx

    from onnxprune import optimize

    model = onnx.load(zoo_onnx("bert", exporter))
    seen = _short_distillation(monkeypatch)
    result = optimize(
        model,
        "macs=0.8",
        data=_ids(model, n=48),
        recover="lsq+distill",
        criterion="l1",
        allocation="global",
        steps=1,
        max_drop=1.0,
        measure_latency=False,
        plan_options=plan_options,
    )
    assert seen and set(seen) == {loss}
    assert result.report.macs_ratio < 0.95


def test_an_opset_23_export_with_a_padding_mask_is_optimized_and_validated(zoo_onnx, tmp_path):
    """Dynamo at opset 23 writes SDPA as ONNX Attention with a [B, 1, 1, T] padding mask,
    which ONNX Runtime 1.31's kernel refuses at any length above 1: the original is evaluated,
    timed and validated in the lowered form onnxprune writes, and a note says so."""
    import onnx

    from onnxprune import optimize
    from onnxprune.evaluate.validation import validate

    path = zoo_onnx("bert_sdpa", "dynamo", opset=23)
    model = onnx.load(path)
    assert any(node.op_type == "Attention" for node in model.graph.node)
    data = _ids(model, n=24)
    result = optimize(model, "macs=0.9", data=data, criterion="l1", allocation="global",
                      steps=1, max_drop=1.0)  # fmt: skip
    assert result.report.macs_ratio < 0.97
    assert any("Attention node(s) were evaluated and timed" in n for n in result.report.notes)
    assert not any(node.op_type == "Attention" for node in result.model.graph.node)
    pruned = tmp_path / "pruned.onnx"
    onnx.save(result.model, pruned)
    check = validate(str(path), str(pruned), data, metrics=["embedding_cosine"])
    cosine = check.fidelity["last_hidden_state"]["embedding_cosine"]
    assert cosine is not None and cosine > 0.5


def test_prune_and_sparsify_with_data_run_on_an_opset_23_export(zoo_onnx):
    """Their data doors check that the model runs on the data: a model holding ONNX
    Attention is checked in its lowered form (ONNX Runtime's kernel refuses the mask)."""
    import onnx

    from onnxprune import prune, sparsify

    model = onnx.load(zoo_onnx("bert_sdpa", "dynamo", opset=23))
    data = _ids(model, n=8)
    pruned = prune(model, ratio=0.3, criterion="obs", data=data)
    assert any(group.kept < group.clusters for group in pruned.plan.groups)
    sparse = sparsify(model, sparsity=0.5, criterion="obs", data=data)
    assert sparse.total_zeros >= 0.45 * sparse.total_weights
