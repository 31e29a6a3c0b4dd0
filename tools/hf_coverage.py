"""Hugging Face architectures exported by torch.onnx: prunable MAC share and mask equivalence.

Twenty-two ``transformers`` models (extra ``bench``) built from small configs with random weights
(nothing is downloaded), exported by the TorchScript exporter at opset 17 with a dynamic
batch: BERT-family text encoders (BERT, RoBERTa, XLM-R, ELECTRA, ALBERT, DistilBERT, DeBERTa-v2,
MPNet, XLNet with its einsum attention; inputs ``input_ids`` and ``attention_mask``, 16 tokens) and vision backbones (ViT, DeiT,
Swin, ConvNeXt, MobileViT, SegFormer, ResNet, RegNet) and task heads (DETR and YOLOS
detectors, DPT depth, SegFormer and MobileViT segmentation; 64×64 inputs). Random weights matter here: zero biases
and unit norm scales are equal across layers, and torch.onnx merges equal initializers into
one tensor — the case the preprocessing pass ``unshare_uniform_constants`` exists for. Each
model is analysed with and without that pass (``before`` / ``after``; ``--without`` names other
passes to leave out of ``before``), with norm statistics
allowed (text encoders prune their hidden size through LayerNorm), and the mask-equivalence
oracle runs on two random removals of the analysis without norm statistics.

    python tools/hf_coverage.py            # writes the hf-coverage section
    python tools/hf_coverage.py --no-write --models bert,swin
    python tools/hf_coverage.py --exporter dynamo --opset 23 --without lower_attention

``--exporter dynamo --opset 23``: PyTorch's dynamo exporter at opset 23 writes
``scaled_dot_product_attention`` as ONNX ``Attention`` nodes (the pass ``lower_attention``).
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

SECTION = "hf-coverage"
TOKENS = 16
SMALL = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
         "intermediate_size": 128}  # fmt: skip
STAGES = {"hidden_sizes": [16, 32, 64, 128], "depths": [1, 1, 1, 1]}
TEXT = {
    "bert": ("BertConfig", "BertModel", SMALL),
    "roberta": ("RobertaConfig", "RobertaModel", SMALL),
    "xlm_roberta": ("XLMRobertaConfig", "XLMRobertaModel", SMALL),
    "electra": ("ElectraConfig", "ElectraModel", {**SMALL, "embedding_size": 32}),
    "albert": ("AlbertConfig", "AlbertModel", {**SMALL, "embedding_size": 32}),
    "distilbert": ("DistilBertConfig", "DistilBertModel",
                   {"dim": 64, "n_layers": 2, "n_heads": 4, "hidden_dim": 128}),
    "deberta_v2": ("DebertaV2Config", "DebertaV2Model", SMALL),
    "mpnet": ("MPNetConfig", "MPNetModel", SMALL),
    "xlnet": ("XLNetConfig", "XLNetModel",
              {"d_model": 64, "n_layer": 2, "n_head": 4, "d_inner": 128}),
}  # fmt: skip
VISION = {
    "vit": ("ViTConfig", "ViTModel", {**SMALL, "image_size": 32, "patch_size": 8}),
    "deit": ("DeiTConfig", "DeiTModel", {**SMALL, "image_size": 32, "patch_size": 8}),
    "swin": ("SwinConfig", "SwinModel", {"image_size": 32, "patch_size": 2, "embed_dim": 16,
                                         "depths": [1, 1], "num_heads": [2, 4], "window_size": 4}),
    "convnext": ("ConvNextConfig", "ConvNextModel", STAGES),
    "mobilevit": ("MobileViTConfig", "MobileViTModel", {"image_size": 64}),
    "segformer": ("SegformerConfig", "SegformerModel", {**STAGES, "decoder_hidden_size": 64}),
    "resnet": ("ResNetConfig", "ResNetModel", {**STAGES, "embedding_size": 16}),
    "regnet": ("RegNetConfig", "RegNetModel", {**STAGES, "embedding_size": 16, "groups_width": 8}),
}  # fmt: skip
RESNET_BACKBONE = {**STAGES, "embedding_size": 16, "out_features": ["stage4"]}
HEADS = {  # task models: (config, model, options, outputs read)
    "detr": ("DetrConfig", "DetrForObjectDetection", {
        "use_timm_backbone": False, "use_pretrained_backbone": False, "d_model": 32,
        "backbone_config": ("ResNetConfig", RESNET_BACKBONE), "encoder_layers": 1,
        "decoder_layers": 1, "encoder_attention_heads": 4, "decoder_attention_heads": 4,
        "encoder_ffn_dim": 64, "decoder_ffn_dim": 64, "num_queries": 10, "num_labels": 5,
    }, ("logits", "pred_boxes")),
    "yolos": ("YolosConfig", "YolosForObjectDetection", {
        **SMALL, "image_size": [64, 64], "patch_size": 16, "num_detection_tokens": 10,
        "num_labels": 5,
    }, ("logits", "pred_boxes")),
    "dpt": ("DPTConfig", "DPTForDepthEstimation", {
        **SMALL, "num_hidden_layers": 4, "image_size": 64, "patch_size": 16,
        "backbone_out_indices": [0, 1, 2, 3], "neck_hidden_sizes": [16, 32, 64, 64],
        "fusion_hidden_size": 32,
    }, ("predicted_depth",)),
    "segformer_seg": ("SegformerConfig", "SegformerForSemanticSegmentation",
                      {**STAGES, "decoder_hidden_size": 64, "num_labels": 5}, ("logits",)),
    "mobilevit_seg": ("MobileViTConfig", "MobileViTForSemanticSegmentation",
                      {"image_size": 64, "num_labels": 5}, ("logits",)),
}  # fmt: skip
HEAD_SIZE = 64
DEFAULT_WITHOUT = ("unshare_uniform_constants",)


def _config(transformers, name: str, options: dict):
    """A config from ``options``; a (config name, options) value is a nested config."""
    resolved = {
        key: _config(transformers, *value) if isinstance(value, tuple) else value
        for key, value in options.items()
    }
    return getattr(transformers, name)(**resolved)


def export(
    name: str, path: Path, exporter: str = "torchscript", opset: int = 17
) -> dict[str, list[int]]:
    """Export ``name`` to ``path``; returns the input shapes the analysis uses (batch 1)."""
    import torch
    import transformers

    torch.manual_seed(0)
    if name in HEADS:
        config_name, model_name, options, keys = HEADS[name]
    else:
        (config_name, model_name, options), keys = {**TEXT, **VISION}[name], ("last_hidden_state",)
    inner = getattr(transformers, model_name)(_config(transformers, config_name, options))
    inner.eval()
    if name in HEADS:

        class Task(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.inner = inner

            def forward(self, pixels):
                result = self.inner(pixel_values=pixels)
                return tuple(getattr(result, key) for key in keys)

        module, names = Task(), ["pixel_values"]
        args = (torch.randn(2, 3, HEAD_SIZE, HEAD_SIZE),)
        axes = {"pixel_values": {0: "batch"}}
        shapes = {"pixel_values": [1, 3, HEAD_SIZE, HEAD_SIZE]}
    elif name in TEXT:

        class Encoder(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.inner = inner

            def forward(self, ids, mask):
                return self.inner(input_ids=ids, attention_mask=mask).last_hidden_state

        module, names = Encoder(), ["input_ids", "attention_mask"]
        args = (torch.randint(5, 100, (2, TOKENS)), torch.ones(2, TOKENS, dtype=torch.long))
        axes = {n: {0: "batch", 1: "tokens"} for n in names}
        shapes = {n: [1, TOKENS] for n in names}
    else:
        size = options.get("image_size", 64)
        module, names = inner, ["pixel_values"]
        args = (torch.randn(2, 3, size, size),)
        axes = {"pixel_values": {0: "batch"}}
        shapes = {"pixel_values": [1, 3, size, size]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, args, str(path), input_names=names, output_names=list(keys),
            dynamic_axes={**axes, **{key: {0: "batch"} for key in keys}}, opset_version=opset,
            dynamo=exporter == "dynamo", **({"external_data": False} if exporter == "dynamo"
                                            else {}),
        )  # fmt: skip
    return shapes


def probe(
    name: str,
    folder: Path,
    without: tuple[str, ...] = DEFAULT_WITHOUT,
    exporter: str = "torchscript",
    opset: int = 17,
) -> list[str]:
    from onnxprune.analysis import analyze
    from onnxprune.io import load_model
    from onnxprune.passes import DEFAULT_PASSES, preprocess
    from tests.oracle import prove_random_removals

    tick = time.perf_counter()
    path = folder / f"{name}.onnx"
    try:
        shapes = export(name, path, exporter, opset)
    except Exception as error:  # exporters raise many types
        return [name, f"no export ({type(error).__name__})", "-", "-", "-", "-"]
    model = load_model(str(path))
    cells = []
    for passes in (tuple(p for p in DEFAULT_PASSES if p not in without), DEFAULT_PASSES):
        prepared = preprocess(model, input_shapes=shapes, passes=passes).model
        analysis = analyze(prepared, shapes, allow_norm_stats=True)
        share = analysis.prunable_macs() / max(analysis.total_macs, 1)
        prunable = sum(group.prunable for group in analysis.groups)
        cells.append(f"{share:.1%} ({prunable}/{len(analysis.groups)})")
    blocked = blocked_reasons(analysis)
    proof = prove_random_removals(analyze(prepared, shapes, allow_norm_stats=False))
    return [name, *cells, blocked, proof, f"{time.perf_counter() - tick:.1f}"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join([*TEXT, *VISION, *HEADS]))
    parser.add_argument(
        "--without",
        default=",".join(DEFAULT_WITHOUT),
        help="preprocessing passes left out of the 'before' column, comma-separated",
    )
    parser.add_argument("--exporter", choices=("torchscript", "dynamo"), default="torchscript")
    parser.add_argument("--opset", type=int, default=17)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    without = tuple(p for p in args.without.split(",") if p)
    warnings.filterwarnings("ignore")
    rows = []
    with tempfile.TemporaryDirectory(prefix="onnxprune-hf-") as name:
        for model in args.models.split(","):
            rows.append(probe(model, Path(name), without, args.exporter, args.opset))
            print(" | ".join(rows[-1]), flush=True)
    header = [
        "model", "prunable MAC share (groups) before", "after", "still blocked (after)",
        "mask equivalence", "s",
    ]  # fmt: skip
    command = "python tools/hf_coverage.py" + (
        "" if args.models == ",".join([*TEXT, *VISION, *HEADS]) else f" --models {args.models}"
    )
    if without != DEFAULT_WITHOUT:
        command += f" --without {args.without}"
    default_export = (args.exporter, args.opset) == ("torchscript", 17)
    if not default_export:
        command += f" --exporter {args.exporter} --opset {args.opset}"
    before = " and ".join(f"`{p}`" for p in without)
    body = (
        "### Hugging Face architectures through torch.onnx"
        + ("" if default_export else f" ({args.exporter}, opset {args.opset})")
        + "\n\n"
        + markdown_table(header, rows)
        + f"\n\nBefore = preprocessing without {before}, after = with "
        + ("it; " if len(without) == 1 else "them; ")
        + "analysis with norm statistics allowed; mask equivalence on two random removals of "
        "the analysis without them (tests/oracle.py). s = export, two analyses and the proof."
        f"\n\nCommand: `{command}`."
    )
    section = SECTION if default_export else f"{SECTION}-{args.exporter}-{args.opset}"
    publish(section, body, not args.no_write)


if __name__ == "__main__":
    main()
