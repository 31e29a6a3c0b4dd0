"""PyTorch layers whose exports needed new channel rules: prunable share and mask equivalence.

Small models with random weights (nothing is downloaded), exported by both PyTorch exporters
(TorchScript at opset 17 with a dynamic batch; dynamo with a dynamic batch and, for the text
encoders, a dynamic sequence): ``nn.TransformerEncoder`` sequence-first and batch-first
(pre-norm), a text encoder with a padding mask (``src_key_padding_mask``), an ESPCN-style
super-resolution net (``nn.PixelUnshuffle`` stem, two ``nn.PixelShuffle`` heads), and features
warped by a sampling grid given as input (``F.grid_sample``) and repeated (``Tensor.repeat``),
and attention written with ``torch.einsum`` (``models/einsum_blocks.py``: per-head [D, H, d]
projections, and per-head weights after the context), and a text-line recognizer whose conv
features feed a bidirectional LSTM (sequence-first) or GRU (batch-first)
(``models/recurrent_blocks.py``). Each is preprocessed and analysed (attention in whole heads, norm
statistics not allowed); the mask-equivalence oracle runs on two random removals.

    python tools/torch_layers_coverage.py            # writes the torch-layers section
    python tools/torch_layers_coverage.py --no-write --models espcn
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from _coverage import blocked_reasons  # noqa: E402
from _markdown import markdown_table, publish  # noqa: E402

SECTION = "torch-layers"
TOKENS, DIM, HEADS, FFN = 6, 32, 4, 48
MODELS = (
    "encoder_seq_first",
    "encoder_batch_first",
    "text_padding_mask",
    "espcn",
    "warp_repeat",
    "einsum_attention",
    "per_head_weights",
    "crnn_lstm",
    "crnn_gru",
)


def build(name: str):
    """(module, example inputs, input names, dynamo dynamic dims per input)."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    torch.manual_seed(0)
    batch = torch.export.Dim("batch", max=64)
    tokens = torch.export.Dim("tokens", max=64)
    if name in ("einsum_attention", "per_head_weights"):
        from models import einsum_blocks

        module = (
            einsum_blocks.EinsumBlock()
            if name == "einsum_attention"
            else einsum_blocks.PerHeadWeights()
        )
        example = torch.randn(2, einsum_blocks.TOKENS, einsum_blocks.DIM)
        return module, (example,), ["x"], [{0: batch}]
    if name.startswith("encoder"):
        first = name == "encoder_batch_first"

        class Encoder(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                layer = nn.TransformerEncoderLayer(
                    DIM, HEADS, FFN, dropout=0.0, batch_first=first, norm_first=first
                )
                self.embed = nn.Linear(8, DIM)
                self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
                self.head = nn.Linear(DIM, 3)

            def forward(self, x):
                h = self.embed(x if first else x.transpose(0, 1))
                return self.head(self.encoder(h).mean(1 if first else 0))

        return Encoder(), (torch.randn(2, TOKENS, 8),), ["x"], [{0: batch, 1: tokens}]
    if name == "text_padding_mask":

        class Text(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.embed = nn.Embedding(50, DIM)
                layer = nn.TransformerEncoderLayer(DIM, HEADS, FFN, dropout=0.0, batch_first=True)
                self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)

            def forward(self, ids, mask):
                h = self.encoder(self.embed(ids), src_key_padding_mask=mask == 0)
                weights = mask.unsqueeze(-1).to(h.dtype)
                return (h * weights).sum(1) / weights.sum(1).clamp(min=1.0)

        mask = torch.ones(2, TOKENS, dtype=torch.int64)
        mask[1, -2:] = 0
        dims = {0: batch, 1: tokens}
        return Text(), (torch.randint(0, 50, (2, TOKENS)), mask), ["ids", "mask"], [dims, dims]
    if name == "espcn":

        class ESPCN(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.stem = nn.Sequential(nn.PixelUnshuffle(2), nn.Conv2d(12, 32, 5, padding=2))
                self.body = nn.Conv2d(32, 16, 3, padding=1)
                self.up = nn.Sequential(nn.Conv2d(16, 3 * 16, 3, padding=1), nn.PixelShuffle(4))
                self.side = nn.Sequential(nn.Conv2d(16, 32, 3, padding=1), nn.PixelShuffle(2))
                self.out = nn.Conv2d(3, 3, 3, padding=1)
                self.side_out = nn.Conv2d(8, 3, 1)

            def forward(self, x):
                h = torch.tanh(self.body(torch.tanh(self.stem(x))))
                return self.out(self.up(h)), self.side_out(self.side(h))

        return ESPCN(), (torch.randn(2, 3, 16, 16),), ["x"], [{0: batch}]

    if name.startswith("crnn"):
        from models.recurrent_blocks import CRNN, HEIGHT, WIDTH

        kind = name.split("_")[1]  # the LSTM sequence-first, the GRU batch-first
        module = CRNN(kind, batch_first=kind == "gru")
        return module, (torch.randn(2, 3, HEIGHT, WIDTH),), ["x"], [{0: batch}]

    class Warp(nn.Module):
        """Features warped by a sampling grid given as input (flow warping), repeated, conv."""

        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Conv2d(3, 8, 3, padding=1)
            self.head = nn.Conv2d(16, 4, 3, padding=1)

        def forward(self, x, grid):
            sampled = F.grid_sample(torch.relu(self.features(x)), grid, align_corners=False)
            return self.head(sampled.repeat(1, 2, 1, 1))

    grid = torch.rand(2, 10, 10, 2) * 2 - 1
    return Warp(), (torch.randn(2, 3, 12, 12), grid), ["x", "grid"], [{0: batch}, {0: batch}]


def export(name: str, exporter: str, path: Path) -> None:
    import torch

    module, args, names, dims = build(name)
    module.eval()
    with torch.no_grad():  # distinct, non-zero weights everywhere (deepcopy clones layers)
        for parameter in module.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.05)
    outputs = [f"y{i}" for i in range(2 if name == "espcn" else 1)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if exporter == "torchscript":
            torch.onnx.export(module, args, str(path), input_names=names, output_names=outputs,
                              dynamic_axes={n: {0: "batch"} for n in names}, dynamo=False,
                              opset_version=17)  # fmt: skip
        else:
            torch.onnx.export(module, args, str(path), input_names=names, output_names=outputs,
                              dynamic_shapes=dict(zip(names, dims, strict=True)), dynamo=True,
                              external_data=False)  # fmt: skip


def probe(name: str, exporter: str, folder: Path) -> list[str]:
    from onnxprune.analysis import analyze
    from onnxprune.io import load_model
    from onnxprune.passes import preprocess
    from tests.oracle import prove_random_removals

    tick = time.perf_counter()
    path = folder / f"{name}-{exporter}.onnx"
    export(name, exporter, path)
    prepared = preprocess(load_model(str(path))).model
    analysis = analyze(prepared, allow_norm_stats=False)
    share = analysis.prunable_macs() / max(analysis.total_macs, 1)
    prunable = sum(group.prunable for group in analysis.groups)
    blocked = blocked_reasons(analysis)
    proof = prove_random_removals(analysis)
    return [
        name, exporter, f"{prunable}/{len(analysis.groups)}", f"{share:.1%}",
        blocked, proof, f"{time.perf_counter() - tick:.1f}",
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    rows = []
    with tempfile.TemporaryDirectory(prefix="onnxprune-torch-layers-") as name:
        for model in args.models.split(","):
            for exporter in ("torchscript", "dynamo"):
                rows.append(probe(model, exporter, Path(name)))
                print(" | ".join(rows[-1]), flush=True)
    header = [
        "model", "exporter", "prunable groups", "prunable MAC share", "blocked (why)",
        "mask equivalence", "s",
    ]  # fmt: skip
    command = "python tools/torch_layers_coverage.py" + (
        "" if args.models == ",".join(MODELS) else f" --models {args.models}"
    )
    body = (
        "### PyTorch layers through torch.onnx\n\n"
        + markdown_table(header, rows)
        + "\n\nRandom weights; attention in whole heads, norm statistics not allowed; mask "
        "equivalence on two random removals (tests/oracle.py). s = export, preprocessing, "
        f"analysis and the proof.\n\nCommand: `{command}`."
    )
    publish(SECTION, body, not args.no_write)


if __name__ == "__main__":
    main()
