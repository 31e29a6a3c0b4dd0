"""One set of defaults for prune and optimize (API and CLI)."""

from __future__ import annotations

import inspect

from onnxprune import defaults
from onnxprune.pipeline.api import optimize
from onnxprune.pipeline.config import OptimizeOptions
from onnxprune.prune import prune
from onnxprune.runtime.blocks import channel_block


def test_prune_and_optimize_share_their_defaults():
    prune_defaults = inspect.signature(prune).parameters
    optimize_defaults = inspect.signature(optimize).parameters
    for name in ("max_ratio", "round_to"):
        assert prune_defaults[name].default == optimize_defaults[name].default
    assert prune_defaults["criterion"].default == defaults.DATA_FREE_CRITERION
    assert OptimizeOptions().round_to is None and OptimizeOptions().max_ratio == defaults.MAX_RATIO


def test_round_to_resolves_to_the_providers_channel_block():
    assert defaults.round_to("cpu") == channel_block("cpu")
    assert defaults.round_to("cuda") == 8
    assert defaults.round_to("cpu", 1) == 1


def test_data_free_prune_leaves_normalization_coupled_groups_unless_allowed(zoo_onnx):
    path = zoo_onnx("vit_tiny", "torchscript")
    default = prune(str(path), ratio=0.3, round_to=1)
    allowed = prune(str(path), ratio=0.3, round_to=1, allow_norm_stats=True)
    coupled = [g for g in allowed.plan.groups if g.stats_coupled and g.kept < g.clusters]
    assert coupled, "the residual stream feeds LayerNorm statistics and is pruned when allowed"
    assert all(g.kept == g.clusters for g in default.plan.groups if g.stats_coupled)
    assert allowed.plan.macs_after < default.plan.macs_after
