"""N:M channel permutations: the search objective, the search, and sparsify(permute=True)."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import onnx
import pytest

from onnxprune import sparsify
from onnxprune.calibrate.session import make_session
from onnxprune.errors import InputError
from onnxprune.passes import preprocess
from onnxprune.sparsity.patterns import nm_mask
from onnxprune.sparsity.permutation import _proof_feeds, retained, search_order

DIGITS = Path(__file__).resolve().parents[2] / "models" / "digits"


def test_retained_is_what_nm_keeps():
    rng = np.random.default_rng(0)
    saliency = rng.random((5, 12))
    order = rng.permutation(12)
    reordered = saliency[:, order]
    kept = reordered[~nm_mask(reordered, 2, 4)].sum()
    assert retained(saliency, order, 2, 4) == pytest.approx(kept)


def test_search_never_loses_to_the_identity_and_returns_a_permutation():
    rng = np.random.default_rng(1)
    for trial in range(5):
        saliency = (rng.standard_normal((40, 64)) * rng.gamma(0.5, size=64)) ** 2
        order = search_order(saliency, 2, 4, seed=trial)
        assert sorted(order.tolist()) == list(range(64))
        assert retained(saliency, order, 2, 4) >= retained(saliency, np.arange(64), 2, 4)


def test_search_spreads_channels_that_matter_together():
    """Columns 0-3 are large in every row: the identity order keeps two of them per row, any
    order with one of them per run keeps all four."""
    saliency = np.full((6, 16), 0.01)
    saliency[:, :4] = 1.0
    order = search_order(saliency, 2, 4)
    assert retained(saliency, order, 2, 4) == pytest.approx(6 * (4 * 1.0 + 4 * 0.01))
    assert retained(saliency, np.arange(16), 2, 4) < retained(saliency, order, 2, 4)


def test_search_is_near_the_brute_force_optimum_on_eight_columns():
    rng = np.random.default_rng(2)
    ratios = []
    for trial in range(12):
        saliency = rng.random((10, 8)) ** 3
        best = max(retained(saliency, np.array(p), 2, 4) for p in itertools.permutations(range(8)))
        ratios.append(retained(saliency, search_order(saliency, 2, 4, seed=trial), 2, 4) / best)
    assert min(ratios) > 0.97
    assert sum(r > 1 - 1e-9 for r in ratios) >= 8


@pytest.fixture(scope="module")
def digits():
    model = onnx.load(DIGITS / "digits_mbv2.onnx")
    data = dict(np.load(DIGITS / "digits_calib.npz"))
    return model, {"input": data["input"][:64]}


@pytest.mark.parametrize("criterion", ["magnitude", "obs"])
def test_sparsify_with_permute_holds_the_pattern_and_reorders(digits, criterion):
    model, data = digits
    kwargs = {"data": data} if criterion == "obs" else {}
    result = sparsify(model, pattern="2:4", criterion=criterion, permute=True, **kwargs)
    assert result.permutation is not None
    searched = [g for g in result.permutation.plan.groups if g.order is not None]
    assert searched and all(g.after >= g.before for g in searched)
    assert any(g.after > g.before for g in searched)
    assert result.permutation.max_error <= 1e-4
    assert any(note.startswith("N:M channel permutation") for note in result.notes)
    assert all(layer.holds_nm for layer in result.layers)
    onnx.checker.check_model(result.model, full_check=True)
    make_session(result.model).run(None, {"input": data["input"][:4]})


def test_permuted_magnitude_keeps_more_weight_energy(digits):
    """Data-free, the search maximises the kept w² of each consumer: against 2:4 magnitude on
    the same preprocessed model without the reorder, the kept Σw² grows."""
    model, _ = digits
    permuted = sparsify(model, pattern="2:4", criterion="magnitude", permute=True)
    plain = sparsify(preprocess(model).model, pattern="2:4", criterion="magnitude", permute=False)

    def kept_energy(result) -> float:
        names = {layer.weight for layer in result.layers}
        return sum(
            float((onnx.numpy_helper.to_array(t).astype(np.float64) ** 2).sum())
            for t in result.model.graph.initializer
            if t.name in names
        )

    assert {layer.node for layer in plain.layers} == {layer.node for layer in permuted.layers}
    assert kept_energy(permuted) > kept_energy(plain)


def test_permute_without_a_pattern_is_an_input_error(digits):
    model, _ = digits
    with pytest.raises(InputError, match="N:M"):
        sparsify(model, sparsity=0.5, permute=True)


def test_unknown_saliency_is_an_input_error(digits):
    model, _ = digits
    with pytest.raises(InputError, match="saliency"):
        sparsify(model, pattern="2:4", permute_saliency="best")


@pytest.mark.parametrize("name", ["convnext", "vit_tiny", "bert"])
def test_default_two_four_on_zoo_models_with_dynamic_axes(zoo_onnx, name):
    """Data-free, the reorder is proven on valid random inputs at the analysed shapes (dynamic
    dims 1, never an empty batch): a real, non-zero comparison."""
    result = sparsify(zoo_onnx(name), pattern="2:4")
    assert result.permutation is not None and result.permutation.skipped is None
    feeds = _proof_feeds(result.permutation.model, None, 8)
    assert all(min(np.shape(value), default=1) >= 1 for value in feeds.values())
    assert 0 < result.permutation.max_error <= 1e-4


def test_a_model_that_cannot_run_is_left_in_order_with_a_note(digits, monkeypatch):
    import onnxprune.sparsity.permutation as permutation

    class Broken:
        def run(self, *args, **kwargs):
            raise RuntimeError("cannot run")

    monkeypatch.setattr(permutation, "make_session", lambda model: Broken())
    model, _ = digits
    result = sparsify(model, pattern="2:4")
    assert result.permutation.skipped and "cannot run" in result.permutation.skipped
    assert any("permutation skipped" in note for note in result.notes)
    assert all(layer.holds_nm for layer in result.layers)
