"""``onnxprune bench`` through the CLI: table, JSON, provider errors and fallback, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
from click.testing import CliRunner

from onnxprune.cli import cli
from onnxprune.runtime import providers
from tests.runtime.tiny import conv_model

DIGITS = Path(__file__).resolve().parents[2] / "models" / "digits"
FAST = ["--runs", "3", "--min-time", "0", "--warmup", "1", "--no-memory", "--threads", "1"]


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    wide, narrow = tmp_path / "wide.onnx", tmp_path / "narrow.onnx"
    onnx.save_model(conv_model(16), str(wide))
    onnx.save_model(conv_model(4), str(narrow))
    return wide, narrow


@pytest.fixture
def no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(providers, "probe_provider", lambda key: None if key == "cpu" else "no GPU")


def test_table_side_by_side_with_ratios(pair) -> None:
    result = invoke(
        "bench", *pair, "--provider", "cpu", "--batch", "1,2", "--input-shape", "x:1,3,8,8", *FAST
    )
    assert result.exit_code == 0, result.output
    assert "provider: CPUExecutionProvider" in result.stdout
    assert "batch 1" in result.stdout and "batch 2" in result.stdout
    assert "wide.onnx" in result.stdout and "narrow.onnx" in result.stdout
    assert "p50 ms" in result.stdout and "x)" in result.stdout  # "(0.52x)"-style ratio cells
    assert "p50 ratio, 95 % interval" in result.stdout


def test_min_time_times_past_runs(pair) -> None:
    args = ["bench", *pair, "--provider", "cpu", "--input-shape", "x:1,3,8,8", "--runs", "3"]
    result = invoke(*args, "--warmup", "1", "--no-memory", "--min-time", "0.5", "--json", "-")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["settings"]["min_seconds"] == 0.5
    rows = data["results"]
    assert rows[0]["runs"] == rows[1]["runs"] > 3  # two tiny convs: 3 rounds take far under 0.5 s
    assert rows[1]["ratio_p50_low"] <= rows[1]["ratio_p50"] <= rows[1]["ratio_p50_high"]


def test_json_file_and_stdout(pair, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    args = ["bench", *pair, "--provider", "cpu", "--input-shape", "x:1,3,8,8", *FAST]
    result = invoke(*args, "--batch", "2", "--json", out)
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert [(row["model"], row["batch"]) for row in data["results"]] == [
        ("wide.onnx", 2),
        ("narrow.onnx", 2),
    ]
    for row in data["results"]:
        assert {"p50_ms", "p90_ms", "throughput", "ratio_p50", "file_bytes"} <= set(row)
        assert row["runs"] == 3
    result = invoke(*args, "--json", "-")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["batch_sizes"] == [1]


def test_explicit_cuda_without_gpu_exits_2(pair, no_gpu) -> None:
    result = invoke("bench", *pair, "--provider", "cuda", "--input-shape", "x:1,3,8,8", *FAST)
    assert result.exit_code == 2
    assert "error: provider cuda cannot be used: no GPU" in result.stderr
    assert "Traceback" not in result.output


def test_explicit_cuda_on_this_machine(pair) -> None:
    """Unmocked: exit 2 where CUDA cannot run here, a CUDA benchmark where it can."""
    result = invoke(
        "bench", pair[0], "--provider", "cuda", "--input-shape", "x:1,3,8,8", *FAST, "--json", "-"
    )
    if providers.probe_provider("cuda") is None:
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["provider"] == "CUDAExecutionProvider"
    else:
        assert result.exit_code == 2
        assert result.stderr.startswith("error: provider cuda cannot be used:")


def test_auto_falls_back_with_a_note(pair, no_gpu) -> None:
    result = invoke("bench", pair[0], "--input-shape", "x:1,3,8,8", *FAST)
    assert result.exit_code == 0, result.output
    assert "note: cuda unavailable: fell back to CPU (no GPU)" in result.stderr
    assert "provider: CPUExecutionProvider" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--batch", "1,x"], "--batch expects positive integers"),
        (["--batch", "0"], "--batch expects positive integers"),
        (["--runs", "0"], "--runs must be >= 1"),
        (["--min-time", "-1"], "--min-time must be >= 0"),
        ([], "dynamic dimension H at axis 2"),
        (["--input-shape", "y:1,3,8,8"], "unknown input 'y'"),
    ],
)
def test_bad_options_exit_2(pair, args, message) -> None:
    extra = [] if not args or args[0] == "--input-shape" else ["--input-shape", "x:1,3,8,8"]
    result = invoke("bench", pair[0], "--provider", "cpu", *FAST, *extra, *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr


def test_bad_model_exits_2(tmp_path: Path) -> None:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"\x08\x07garbage")
    result = invoke("bench", broken, "--provider", "cpu", *FAST)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: cannot load model")
    assert len(result.stderr.strip().splitlines()) == 1
    result = invoke("bench", tmp_path / "missing.onnx", "--provider", "cpu", *FAST)
    assert result.exit_code == 2
    assert "no such file" in result.stderr


def test_zoo_model_with_memory(zoo_onnx) -> None:
    path = zoo_onnx("resnet18", "torchscript")
    result = invoke(
        "bench", path, "--provider", "cpu", "--runs", "3", "--warmup", "1", "--json", "-"
    )
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)["results"]
    assert row["p50_ms"] > 0 and row["peak_rss_mb"] > 0
    assert row["file_bytes"] == path.stat().st_size


@pytest.mark.skipif(not (DIGITS / "digits_vgg.onnx").is_file(), reason="digits models not built")
def test_shipped_digits_models() -> None:
    models = [DIGITS / "digits_vgg.onnx", DIGITS / "digits_mbv2.onnx"]
    result = invoke("bench", *models, "--provider", "cpu", "--batch", "1,4", *FAST, "--json", "-")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert len(data["results"]) == 4
    assert data["results"][0]["ratio_p50"] == 1.0


def test_text_encoder_timed_on_given_data_without_input_shape(zoo_onnx, tmp_path: Path) -> None:
    """Token ids from --data (no --input-shape): the sequence length comes from the data."""
    import numpy as np

    path = zoo_onnx("bert", "dynamo")
    ids = np.random.default_rng(0).integers(0, 50, size=(3, 7))
    data = tmp_path / "tokens.npz"
    np.savez(
        data,
        input_ids=ids,
        attention_mask=np.ones_like(ids),
        token_type_ids=np.zeros_like(ids),
    )
    result = invoke("bench", path, "--provider", "cpu", *FAST, "--data", data, "--json", "-")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["input_shapes"]["1"]["input_ids"] == [1, 7]
    assert any("given data" in note for note in payload["notes"])


def test_text_encoder_random_ids_in_range(zoo_onnx) -> None:
    path = zoo_onnx("bert", "torchscript")
    shapes = [f"{name}:2,9" for name in ("input_ids", "attention_mask", "token_type_ids")]
    args = [arg for shape in shapes for arg in ("--input-shape", shape)]
    result = invoke("bench", path, "--provider", "cpu", *FAST, *args)
    assert result.exit_code == 0, result.output


def test_an_attention_file_onnxruntime_refuses_is_timed_lowered(tmp_path: Path) -> None:
    """ONNX Runtime 1.31's Attention kernel refuses a [B, 1, 1, T] padding mask; bench times
    the file with its Attention lowered and says so (exit 0); the file itself is untouched."""
    from tests.passes.helpers import padding_mask_attention

    shape = [1, 2, 5, 4]
    model = padding_mask_attention(batch=1)
    path = tmp_path / "attention.onnx"
    onnx.save(model, str(path))
    before = path.read_bytes()
    result = invoke("bench", path, *FAST)
    assert result.exit_code == 0, result.output
    assert "attention.onnx" in result.output
    assert path.read_bytes() == before
    import numpy as np
    import onnxruntime as ort

    feeds = {n: np.zeros(shape, np.float32) for n in "QKV"}
    feeds["M"] = np.zeros((1, 1, 1, 5), np.float32)
    try:
        ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)
        refused = False
    except Exception:  # ONNX Runtime's Fail
        refused = True
    assert ("refused to run the file as given" in result.output) == refused


def test_data_folders_are_scaled_as_the_graph_asks(tmp_path: Path) -> None:
    """bench times the model on a folder read as optimize reads it (a model with NMS inside
    runs as long as the boxes its inputs give it): raw pixels for a graph that normalizes."""
    from onnxprune.cli.commands.bench import _load_feeds
    from tests.graph.test_input_affine import KERAS, _chain_model, _photo_folder

    folder = _photo_folder(tmp_path / "photos")
    path = tmp_path / "keras.onnx"
    onnx.save(_chain_model(KERAS), path)
    assert _load_feeds(str(folder), str(path), None)["x"].max() > 100
    result = invoke("bench", path, "--data", folder, "--runs", "3", "--min-time", "0")
    assert result.exit_code == 0, result.output
