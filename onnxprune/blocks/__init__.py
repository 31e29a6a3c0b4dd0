"""Module pruning: find residual units ``y = x + f(x)``, score them, and remove whole branches.

:func:`find_units` lists removable units (fail closed, reasons recorded),
:func:`score_units` ranks them by registered criteria (:data:`BLOCK_CRITERIA`),
:func:`remove_units` replaces removed branches by their mean output, :func:`remove_blocks`
wires these for the API and the CLI.
"""

from onnxprune.blocks.api import BlockCandidate, BlockRemoval, block_candidates, remove_blocks
from onnxprune.blocks.apply import constant_branch_model, remove_units
from onnxprune.blocks.find import BlockSearch, BlockUnit, RejectedBranch, find_units
from onnxprune.blocks.score import (
    BLOCK_CRITERIA,
    BlockScoring,
    register_block_criterion,
    score_units,
)

__all__ = [
    "BLOCK_CRITERIA",
    "BlockCandidate",
    "BlockRemoval",
    "BlockScoring",
    "BlockSearch",
    "BlockUnit",
    "RejectedBranch",
    "block_candidates",
    "constant_branch_model",
    "find_units",
    "register_block_criterion",
    "remove_blocks",
    "remove_units",
    "score_units",
]
