"""Module pruning: find residual units ``y = x + f(x)``, score them, and remove whole branches.

:func:`find_units` lists removable units (fail closed, reasons recorded), ``score`` ranks them
by registered criteria, :func:`remove_units` replaces removed branches by their mean output.
"""

from onnxprune.blocks.find import BlockSearch, BlockUnit, RejectedBranch, find_units

__all__ = ["BlockSearch", "BlockUnit", "RejectedBranch", "find_units"]
