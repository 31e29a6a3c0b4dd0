"""Reference model zoo: faithful definitions, exports that check, load and match PyTorch."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from models import (
    EXPORTERS,
    MODELS,
    SMALL_CONFIG,
    build_model,
    build_onnx,
    get_spec,
    sample_input,
    text_inputs,
)
from models.__main__ import main as zoo_cli

RELATIVE_TOLERANCE = 1e-4

# Well-known parameter counts at width 1 with 1000 classes (torchvision / timm / the papers).
KNOWN_PARAMETER_COUNTS = {
    "resnet50": 25_557_032,
    "vgg16": 138_357_544,
    "vgg16_bn": 138_365_992,
    "resnet18": 11_689_512,
    "mobilenetv2": 3_504_872,
    "mobilenetv3_small": 2_542_856,
    "efficientnet_b0": 5_288_548,
    "densenet": 7_978_856,  # DenseNet-121
    "resnext": 25_028_904,  # ResNeXt-50 32x4d
    "convnext": 28_589_128,  # ConvNeXt-Tiny
    "shufflenetv2": 2_278_604,  # ShuffleNetV2 x1.0
    "vit_tiny": 5_717_416,  # ViT-Ti/16 at 224
    "vit_tiny_mha": 5_717_416,  # the same with nn.MultiheadAttention
    "vit_tiny_einsum": 5_715_112,  # torch.einsum over per-head weights, no key bias (12 × 192)
    "bert": 22_713_216,  # all-MiniLM-L6-v2 (BertModel with pooler)
    "bert_sdpa": 22_713_216,
}

# Op types that prove each small export still holds every block type, per exporter.
_COMMON_BLOCK_OPS = {
    "vgg16": {"Conv", "MaxPool", "Gemm", "Relu"},
    "vgg16_bn": {"Conv", "MaxPool", "Gemm", "Relu"},
    "resnet18": {"Conv", "Add", "MaxPool", "Gemm"},
    "resnet50": {"Conv", "Add", "MaxPool", "Gemm"},
    "mobilenetv2": {"Conv", "Clip", "Add", "Gemm"},
    "mobilenetv3_small": {"Conv", "HardSwish", "HardSigmoid", "Mul", "Add", "Gemm"},
    "efficientnet_b0": {"Conv", "Sigmoid", "Mul", "Add", "Gemm"},
    "densenet": {"Conv", "Concat", "BatchNormalization", "AveragePool", "Gemm"},
    "resnext": {"Conv", "Add", "Gemm"},
    "regnet": {"Conv", "Add", "Gemm"},
    "shufflenetv2": {"Conv", "Concat", "Transpose", "Reshape", "MaxPool", "Gemm"},
    "convnext": {"Conv", "Transpose", "LayerNormalization", "MatMul", "Erf", "ReduceMean"},
    "vit_tiny": {"Conv", "MatMul", "Softmax", "LayerNormalization", "Transpose", "Reshape"},
    "vit_tiny_mha": {"Conv", "MatMul", "Softmax", "LayerNormalization", "Reshape", "Gather"},
    "vit_tiny_einsum": {"Conv", "Einsum", "Softmax", "LayerNormalization", "MatMul"},
    "unet": {"Conv", "ConvTranspose", "Resize", "Concat", "MaxPool"},
    "yolo": {"Conv", "Sigmoid", "Concat", "MaxPool", "Resize", "Add"},
    "conv1d_mlp": {"Conv", "Gemm", "Relu"},
    "bert": {"Gather", "Slice", "MatMul", "Softmax", "LayerNormalization", "Erf", "Tanh"},
    "bert_sdpa": {"Gather", "Slice", "MatMul", "Softmax", "LayerNormalization", "Erf", "Tanh"},
}
_EXPORTER_BLOCK_OPS = {
    ("yolo", "dynamo"): {"Split"},  # chunk; TorchScript writes Shape/Slice chains instead
    ("vit_tiny", "torchscript"): {"Split"},  # unbind of the fused qkv
}

CASES = [(name, exporter) for name in MODELS for exporter in EXPORTERS]
TEXT_MODELS = [name for name in MODELS if get_spec(name).is_text]


def _small_model(name: str) -> torch.nn.Module:
    """The PyTorch model exported by zoo_onnx(name) at its SMALL settings."""
    small = SMALL_CONFIG[name]
    return build_model(
        name, small["width"], size=small["size"], depth=small.get("depth", 1.0), seed=0
    )


def _relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    """max|actual - expected| / (max|expected| + 1e-6)."""
    return float(np.abs(actual - expected).max() / (np.abs(expected).max() + 1e-6))


def _torch_outputs(model: torch.nn.Module, x: torch.Tensor) -> list[np.ndarray]:
    """Model outputs as a list of numpy arrays (one per ONNX output)."""
    with torch.no_grad():
        result = model(x)
    results = [result] if isinstance(result, torch.Tensor) else list(result)
    return [tensor.numpy() for tensor in results]


def _run_onnx(path: Path, x: np.ndarray) -> np.ndarray:
    """First output of the model at ``path`` run on ONNX Runtime CPU."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x})[0]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "exporter"),
    [case for case in CASES if case[0] in TEXT_MODELS],
    ids=[f"{n}-{e}" for n, e in CASES if n in TEXT_MODELS],
)
def test_text_export_checks_and_matches_torch_at_two_lengths(
    zoo_onnx, name: str, exporter: str
) -> None:
    """Token-id inputs and both outputs with dynamic batch and sequence; equal to PyTorch at
    two sequence lengths (the position-id slice really follows the input length)."""
    path = zoo_onnx(name, exporter)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert [i.name for i in proto.graph.input] == ["input_ids", "attention_mask", "token_type_ids"]
    assert [o.name for o in proto.graph.output] == ["last_hidden_state", "pooler_output"]
    for value in proto.graph.input:
        assert value.type.tensor_type.elem_type == onnx.TensorProto.INT64
        assert all(d.dim_param for d in value.type.tensor_type.shape.dim)
    missing = _COMMON_BLOCK_OPS[name] - {node.op_type for node in proto.graph.node}
    assert not missing, f"block types missing from the export: {missing}"
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    model = _small_model(name)
    for length in (SMALL_CONFIG[name]["size"], 7):
        inputs = text_inputs(name, batch=3, size=length, seed=1)
        actual = session.run(None, {key: value.numpy() for key, value in inputs.items()})
        with torch.no_grad():
            expected = [tensor.numpy() for tensor in model(**inputs)]
        for got, want in zip(actual, expected, strict=True):
            assert got.shape == want.shape
            assert _relative_error(got, want) <= RELATIVE_TOLERANCE


IMAGE_CASES = [case for case in CASES if case[0] not in TEXT_MODELS]


@pytest.mark.parametrize(
    ("name", "exporter"), IMAGE_CASES, ids=[f"{n}-{e}" for n, e in IMAGE_CASES]
)
def test_export_checks_and_matches_torch(zoo_onnx, name: str, exporter: str) -> None:
    path = zoo_onnx(name, exporter)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert not any(
        init.data_location == onnx.TensorProto.EXTERNAL for init in proto.graph.initializer
    )
    assert sorted(p.name for p in path.parent.iterdir() if p.name.startswith(path.stem)) == [
        path.name
    ]

    expected_outputs = 3 if name == "yolo" else 1
    names = ["output"] if expected_outputs == 1 else [f"output{i}" for i in range(3)]
    assert [i.name for i in proto.graph.input] == ["input"]
    assert [o.name for o in proto.graph.output] == names
    for value in [*proto.graph.input, *proto.graph.output]:
        assert value.type.tensor_type.shape.dim[0].dim_param, f"{value.name} batch is not dynamic"

    ops = Counter(node.op_type for node in proto.graph.node)
    missing = (_COMMON_BLOCK_OPS[name] | _EXPORTER_BLOCK_OPS.get((name, exporter), set())) - set(
        ops
    )
    assert not missing, f"block types missing from the export: {missing}"

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = sample_input(name, batch=2, size=SMALL_CONFIG[name]["size"], seed=1)
    actual = session.run(None, {"input": x.numpy()})
    expected = _torch_outputs(_small_model(name), x)
    assert len(actual) == len(expected) == expected_outputs
    for got, want in zip(actual, expected, strict=True):
        assert got.shape == want.shape
        assert np.abs(want).max() > 0
        assert _relative_error(got, want) <= RELATIVE_TOLERANCE


@pytest.mark.parametrize("name", sorted(KNOWN_PARAMETER_COUNTS))
def test_full_width_parameter_count_matches_reference(name: str) -> None:
    model = build_model(name)
    assert sum(p.numel() for p in model.parameters()) == KNOWN_PARAMETER_COUNTS[name]


def test_build_model_is_deterministic_per_seed() -> None:
    first = build_model("resnet18", 0.25, seed=3).state_dict()
    again = build_model("resnet18", 0.25, seed=3).state_dict()
    other = build_model("resnet18", 0.25, seed=4).state_dict()
    assert all(torch.equal(first[key], again[key]) for key in first)
    assert not torch.equal(first["conv1.weight"], other["conv1.weight"])
    assert not torch.equal(first["bn1.running_var"], other["bn1.running_var"])


def test_batchnorm_statistics_are_non_trivial() -> None:
    model = build_model("resnet50", 0.25)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms
    for norm in norms:
        assert torch.all(norm.running_var >= 0.5) and torch.all(norm.running_var <= 1.5)
        assert norm.running_var.std() > 0.05
        assert norm.running_mean.abs().max() > 0
        assert not torch.allclose(norm.weight, torch.ones_like(norm.weight))
    assert not model.training


def test_convnext_layer_scale_is_non_trivial() -> None:
    model = build_model("convnext", 0.25, depth=0.34)
    gammas = [p for n, p in model.named_parameters() if n.endswith("gamma")]
    assert gammas and all(g.min() >= 0.5 and g.max() <= 1.5 for g in gammas)


@pytest.mark.parametrize("width", [0.25, 0.5])
def test_width_rounds_channels_to_multiples_of_eight(width: float) -> None:
    model = build_model("resnet50", width)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(conv.out_channels % 8 == 0 and conv.out_channels >= 8 for conv in convs)
    assert model.fc.in_features == int(2048 * width)


@pytest.mark.parametrize("size", [64, 224])
@pytest.mark.parametrize(
    "name", [n for n in MODELS if n not in ("yolo", "conv1d_mlp", *TEXT_MODELS)]
)
def test_image_models_run_at_small_and_full_resolution(name: str, size: int) -> None:
    model = build_model(name, 0.125, num_classes=7, size=size, depth=0.1)
    outputs = _torch_outputs(model, sample_input(name, batch=1, size=size))
    expected = (1, 7, size, size) if name == "unet" else (1, 7)
    assert outputs[0].shape == expected
    assert np.isfinite(outputs[0]).all()


def test_yolo_returns_three_raw_scales() -> None:
    model = build_model("yolo", 0.125, num_classes=5, size=128, depth=0.17)
    outputs = _torch_outputs(model, sample_input("yolo", batch=1, size=128))
    assert [o.shape for o in outputs] == [(1, 69, 16, 16), (1, 69, 8, 8), (1, 69, 4, 4)]


def test_keep_batchnorm_export_matches_folded_export(zoo_onnx) -> None:
    kept = zoo_onnx("resnet18", keep_batchnorm=True)
    folded = zoo_onnx("resnet18")
    ops = Counter(node.op_type for node in onnx.load(str(kept)).graph.node)
    assert ops["BatchNormalization"] == 20
    assert "BatchNormalization" not in {n.op_type for n in onnx.load(str(folded)).graph.node}
    x = sample_input("resnet18", batch=3, size=SMALL_CONFIG["resnet18"]["size"]).numpy()
    kept_out = _run_onnx(kept, x)
    folded_out = _run_onnx(folded, x)
    assert _relative_error(kept_out, folded_out) <= RELATIVE_TOLERANCE


def test_static_batch_export_has_fixed_batch(tmp_path: Path) -> None:
    path = build_onnx("conv1d_mlp", tmp_path / "m.onnx", width=0.25, size=32, dynamic_batch=False)
    dims = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims] == [1, 12, 32]


def test_dynamo_export_uses_opset_18(zoo_onnx) -> None:
    proto = onnx.load(str(zoo_onnx("conv1d_mlp", "dynamo")))
    assert {o.domain: o.version for o in proto.opset_import}[""] == 18


def test_cli_build_writes_model_with_requested_classes(tmp_path: Path) -> None:
    out = tmp_path / "u.onnx"
    args = ["build", "unet", "--width", "0.125", "--size", "32", "--classes", "4", "-o", str(out)]
    assert zoo_cli(args) == 0
    dims = onnx.load(str(out)).graph.output[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims[1:]] == [4, 32, 32]


def test_cli_rejects_bad_size_with_exit_code_2(tmp_path: Path, capsys) -> None:
    assert zoo_cli(["build", "unet", "--size", "30", "-o", str(tmp_path / "u.onnx")]) == 2
    assert "multiple of 16" in capsys.readouterr().err
    assert not (tmp_path / "u.onnx").exists()


def test_cli_list_names_every_model(capsys) -> None:
    assert zoo_cli(["list"]) == 0
    listed = {line.split()[0] for line in capsys.readouterr().out.splitlines()}
    assert listed == set(MODELS)


def test_unknown_model_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown model"):
        build_model("alexnet")
