"""Padding tokens, left out of the rows that calibration statistics are built from.

A text model fed padded batches (Hugging Face exports: ``input_ids`` with an
``attention_mask``) computes hidden states at padding positions too; the attention mask keeps
them from every real token, and sentence embeddings pool only the real ones. Rows taken at
padding positions therefore describe inputs the model's answer never depends on: in a
Hessian, a Gram matrix or a least-squares refit they weigh as much as real tokens (half of
the rows of short sentences padded to a common length) and pull the fit toward them.

:func:`onnxprune.graph.mask_input.mask_input` names the model's attention-mask input: the one
rank-2 integer graph input whose name contains "mask". Its batch values give, per sample, which token positions are real
(nonzero). :func:`real_positions` applies them to an activation with one row per token
([batch, tokens, features]: as many rows per sample as the mask has tokens); any other
activation (per-head tensors, images) keeps all its rows.
"""

from __future__ import annotations

import numpy as np


def real_positions(mask: np.ndarray | None, count: int) -> np.ndarray | None:
    """bool [N, count]: which of an activation's ``count`` rows per sample are real tokens;
    None (every row counts) without a mask or when the rows are not one per token."""
    if mask is None or np.ndim(mask) != 2 or mask.shape[1] != count:
        return None
    return np.asarray(mask) != 0
