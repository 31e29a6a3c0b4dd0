"""Zoo models exported at old opsets (9-13) analyse like their opset-17 exports.

Older exporters write Slice bounds as attributes (opset < 10), decompose LayerNorm, and read
``B, N, C = x.shape`` of one tensor to reshape another; the preprocessing and the rules must
see through all of it: the same prunable MAC share as at opset 17, and mask equivalence.
"""

from __future__ import annotations

import onnx
import pytest

from onnxprune.analysis import analyze
from onnxprune.passes import preprocess
from tests.oracle import assert_mask_equivalent, random_feeds, random_removal

CASES = [
    ("vit_tiny", 9),  # Slice-1 with attribute bounds in a Reshape target (used to crash)
    ("vit_tiny", 13),  # attention Reshape targets read the LayerNorm output's shape
    ("convnext", 11),
    ("mobilenetv3_small", 11),
    ("yolo", 11),
    ("efficientnet_b0", 9),
]


def _share(path) -> tuple[float, object]:
    analysis = analyze(preprocess(onnx.load(str(path))).model, allow_norm_stats=False)
    return analysis.prunable_macs() / max(analysis.total_macs, 1), analysis


@pytest.mark.parametrize(("name", "opset"), CASES)
def test_old_opset_export_analyses_like_opset_17(zoo_onnx, name, opset):
    old_share, analysis = _share(zoo_onnx(name, opset=opset))
    new_share, _ = _share(zoo_onnx(name))
    assert old_share == pytest.approx(new_share, abs=1e-9) and old_share > 0.5
    for seed in range(2):
        assert_mask_equivalent(
            analysis, random_removal(analysis, seed=seed),
            feeds=random_feeds(analysis.model, 2, seed), tol=1e-4,
        )  # fmt: skip
