"""Fidelity metrics for text encoders: embedding cosine, retrieval agreement, token agreement.

Top-1 agreement (an argmax over axis 1) means nothing for a model whose output is a hidden
state ``[N, L, H]`` or a sentence embedding ``[N, H]``. These reference metrics
(``fn(candidate, reference) -> float``, registered like :mod:`onnxprune.evaluate.fidelity`)
compare *embeddings*:

* an output of rank 3 ``[N, L, H]`` (tokens × hidden) is mean-pooled over the tokens,
  ``e_n = Σ_l m_nl x_nlh / Σ_l m_nl``, with the attention mask ``m`` when one is given
  (sentence-transformers' mean pooling; without a mask every token counts);
  rank 2 ``[N, H]`` is already one embedding per sample; higher ranks are flattened to
  ``[N, L, H]`` with H the last axis.
* ``embedding_cosine`` = mean over samples of cos(e_n, e'_n).
* ``retrieval`` = 100 · share of samples whose nearest neighbour (cosine, among the other
  evaluation samples) is the same for the candidate's embeddings as for the reference's
  (needs at least 3 samples).
* ``token_agreement`` = 100 · share of (sample, token) positions, masked ones excluded, where
  the argmax over the last axis agrees (token-classification logits ``[N, L, C]``).

Every function takes an optional ``mask`` ([N, L], nonzero = real token); the registry calls
them without one, :func:`onnxprune.evaluate.validation.validate` passes the data's mask
(:func:`attention_mask`) to the functions marked ``uses_mask``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from onnxprune.evaluate.fidelity import NotApplicable, _float_pair
from onnxprune.evaluate.registry import KIND_REFERENCE, builtin

EMBEDDING_COSINE = "embedding_cosine"
RETRIEVAL = "retrieval"
TOKEN_AGREEMENT = "token_agreement"
#: Reference metrics that only make sense for token models (listed by default only for them).
TEXT_METRICS = (EMBEDDING_COSINE, RETRIEVAL, TOKEN_AGREEMENT)


def uses_mask(fn: Callable) -> Callable:
    """Mark a metric function as accepting ``mask=`` (an attention mask [N, L])."""
    fn.uses_mask = True  # type: ignore[attr-defined]
    return fn


def attention_mask(inputs: Mapping[str, np.ndarray]) -> np.ndarray | None:
    """The data's attention mask: the one rank-2 input whose name contains "mask", else None."""
    found = [
        np.asarray(array)
        for name, array in inputs.items()
        if "mask" in name.lower() and np.ndim(array) == 2
    ]
    return found[0] if len(found) == 1 else None


def _tokens(array: np.ndarray) -> np.ndarray:
    """[N, L, H] view of an output of rank >= 3 (H the last axis, the middle axes flattened)."""
    return array.reshape(array.shape[0], -1, array.shape[-1])


def _token_mask(mask: np.ndarray | None, tokens: np.ndarray) -> np.ndarray | None:
    """The mask as float [N, L] when it matches the tokens, else None (all tokens count)."""
    if mask is None:
        return None
    mask = np.asarray(mask)
    if mask.shape != tokens.shape[:2]:
        return None
    return (mask != 0).astype(np.float64)


def mean_pool(hidden: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """One embedding per sample [N, H] (see the module docstring); float64."""
    hidden = np.asarray(hidden, dtype=np.float64)
    if hidden.ndim < 2:
        raise NotApplicable("needs one embedding per sample (rank >= 2)")
    if hidden.ndim == 2:
        return hidden
    tokens = _tokens(hidden)
    weights = _token_mask(mask, tokens)
    if weights is None:
        return tokens.mean(axis=1)
    counts = np.maximum(weights.sum(axis=1, keepdims=True), 1.0)
    return (tokens * weights[:, :, None]).sum(axis=1) / counts


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine; 1 when both rows are zero, 0 when one is."""
    norm_a = np.linalg.norm(a, axis=1)
    norm_b = np.linalg.norm(b, axis=1)
    denominator = norm_a * norm_b
    values = np.where(denominator > 0, (a * b).sum(axis=1) / np.maximum(denominator, 1e-300), 0.0)
    return np.where((norm_a == 0) & (norm_b == 0), 1.0, values)


@builtin(
    EMBEDDING_COSINE,
    KIND_REFERENCE,
    aliases=("sentence_cosine",),
    default_max_drop=0.01,
    distill_loss="mse",
)
@uses_mask
def embedding_cosine(candidate, reference, mask: np.ndarray | None = None) -> float:
    """Mean over samples of cos(e_n, e'_n), e = :func:`mean_pool` of each output."""
    candidate, reference = _float_pair(candidate, reference)
    return float(_cosines(mean_pool(candidate, mask), mean_pool(reference, mask)).mean())


def nearest_neighbours(embeddings: np.ndarray) -> np.ndarray:
    """Index of each row's most cosine-similar other row (first index on ties)."""
    norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
    unit = embeddings / np.where(norms > 0, norms, 1.0)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)
    return similarity.argmax(axis=1)


@builtin(
    RETRIEVAL,
    KIND_REFERENCE,
    unit="%",
    aliases=("nn_agreement", "retrieval_agreement"),
    distill_loss="mse",
    sample_share=True,
)
@uses_mask
def retrieval_agreement(candidate, reference, mask: np.ndarray | None = None) -> float:
    """100 · mean over samples of [NN_cand(n) == NN_ref(n)], NN = :func:`nearest_neighbours`
    of the pooled embeddings among the evaluation samples."""
    candidate, reference = _float_pair(candidate, reference)
    if candidate.shape[0] < 3:
        raise NotApplicable("needs at least 3 samples")
    ours = nearest_neighbours(mean_pool(candidate, mask))
    theirs = nearest_neighbours(mean_pool(reference, mask))
    return float(100.0 * np.mean(ours == theirs))


@builtin(TOKEN_AGREEMENT, KIND_REFERENCE, unit="%", distill_loss="kl_last_axis")
@uses_mask
def token_agreement(candidate, reference, mask: np.ndarray | None = None) -> float:
    """100 · share of unmasked (sample, token) positions where argmax over the last axis of
    the candidate equals the reference's (logits [N, L, C]; rank 2 = one token per sample)."""
    candidate, reference = _float_pair(candidate, reference)
    if candidate.ndim < 2:
        raise NotApplicable("needs per-token scores (rank >= 2)")
    if candidate.ndim == 2:
        return float(100.0 * np.mean(candidate.argmax(-1) == reference.argmax(-1)))
    cand, ref = _tokens(candidate), _tokens(reference)
    agree = (cand.argmax(-1) == ref.argmax(-1)).astype(np.float64)
    weights = _token_mask(mask, cand)
    if weights is None:
        return float(100.0 * agree.mean())
    total = weights.sum()
    return float(100.0 * (agree * weights).sum() / total) if total else 100.0


def has_token_input(input_specs) -> bool:
    """Whether any ``(name, dtype, shape)`` is an integer input other than an 8-bit image
    (``uint8`` of rank >= 3, a TensorFlow export's ``[N, H, W, 3]``): token ids, masks."""
    for spec in input_specs:
        dtype, shape = np.dtype(spec[1]), spec[2]
        image = dtype == np.uint8 and shape is not None and len(shape) >= 3
        if np.issubdtype(dtype, np.integer) and not image:
            return True
    return False


def default_metric_name(
    input_specs: list[tuple], output_specs: list[tuple], has_labels: bool
) -> str:
    """The guard metric ``optimize`` should use when the user names none.

    ``input_specs`` / ``output_specs``: ``(name, numpy dtype, shape)`` of the model's inputs
    and outputs (output 0 is the one reference metrics compare). Rule:

    1. labels in the data -> ``top1``;
    2. an integer input (token ids) and a float first output:
       * its name contains "logit" or "score": rank 2 -> ``agreement`` (sequence
         classification), rank >= 3 -> ``token_agreement`` (token classification);
       * otherwise (hidden states [N, L, H], a pooled embedding [N, H]) -> ``embedding_cosine``;
    3. anything else -> ``agreement`` (top-1 agreement with the original model).
    """
    if has_labels:
        return "top1"
    if has_token_input(input_specs) and output_specs:
        name, dtype, shape = output_specs[0][:3]
        rank = len(shape) if shape is not None else 0
        if np.issubdtype(np.dtype(dtype), np.floating) and rank >= 2:
            if "logit" in name.lower() or "score" in name.lower():
                return "agreement" if rank == 2 else TOKEN_AGREEMENT
            return EMBEDDING_COSINE
    return "agreement"
