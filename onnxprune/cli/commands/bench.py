"""``onnxprune bench``: latency of one or more models side by side, with the ratio to the first."""

from __future__ import annotations

import json
from pathlib import Path

import click

from onnxprune import defaults
from onnxprune.cli.options import input_shape_option
from onnxprune.errors import InputError
from onnxprune.option_text import parse_input_shapes
from onnxprune.runtime.latency import MAX_ROUNDS
from onnxprune.runtime.providers import CHOICES, CUDNN_ALGO_SEARCH

#: Table rows: (label, result attribute, number format).
ROWS: list[tuple[str, str, str]] = [
    ("p50 ms", "p50_ms", "{:.3f}"),
    ("p90 ms", "p90_ms", "{:.3f}"),
    ("p99 ms", "p99_ms", "{:.3f}"),
    ("mean ms", "mean_ms", "{:.3f}"),
    ("throughput /s", "throughput", "{:.1f}"),
    ("first run ms", "first_run_ms", "{:.2f}"),
    ("create s", "create_s", "{:.3f}"),
    ("peak RSS MiB", "peak_rss_mb", "{:.1f}"),
    ("GPU MiB", "gpu_mb", "{:.1f}"),
    ("file MiB", "file_bytes", "{:.2f}"),
]


def parse_batches(text: str) -> list[int]:
    """``"1,32"`` -> [1, 32]; InputError for anything but positive integers."""
    try:
        values = [int(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise InputError(f"--batch expects positive integers like 1,32, got {text!r}") from None
    if not values or any(value < 1 for value in values):
        raise InputError(f"--batch expects positive integers like 1,32, got {text!r}")
    return values


def _cell(value, fmt: str, attribute: str, base=None) -> str:
    if value is None:
        return "-"
    shown = value / 2**20 if attribute == "file_bytes" else value
    text = fmt.format(shown)
    if base:
        text += f" ({value / base:.2f}x)"
    return text


def print_comparison(comparison, console=None) -> None:
    """One rich table per batch size: a column per model, ratios to the first model."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    console.print(f"provider: {comparison.provider}")
    for batch in comparison.batch_sizes:
        table = Table(title=f"batch {batch}")
        table.add_column("")
        for name in comparison.models:
            table.add_column(name, justify="right")
        rows = [comparison.get(name, batch) for name in comparison.models]
        for label, attribute, fmt in ROWS:
            values = [getattr(row, attribute) for row in rows]
            if all(value is None for value in values):
                continue
            cells = [_cell(values[0], fmt, attribute)]
            cells += [_cell(value, fmt, attribute, values[0]) for value in values[1:]]
            table.add_row(label, *cells)
        if len(rows) > 1:
            intervals = [f"{r.ratio_p50_low:.2f}–{r.ratio_p50_high:.2f}" for r in rows[1:]]
            table.add_row("p50 ratio, 95 % interval", "-", *intervals)
        console.print(table)
    first = comparison.results[0]
    console.print(
        f"{first.runs} timed runs per model (interleaved), {first.warmup_runs} warm-up rounds; "
        "ratios are to the first model (interval: paired bootstrap over the rounds)"
    )


def _load_feeds(path: str, model: str, input_shapes) -> dict:
    """The user's data as arrays by input name, checked against the first model's inputs; an
    image folder is scaled as the model's graph asks (as ``optimize`` reads it: a model with
    boxes and NMS inside runs as long as the boxes its inputs give it)."""
    import onnx

    from onnxprune.evaluate import load_data, model_input_specs
    from onnxprune.graph.input_affine import image_pixel_scales

    graph = onnx.load(model, load_external_data=False)
    return load_data(
        path, model_input_specs(graph), input_shapes, pixel_scales=image_pixel_scales(graph)
    ).inputs


@click.command("bench")
@click.argument("models", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "--provider",
    type=click.Choice(CHOICES, case_sensitive=False),
    default="auto",
    show_default=True,
    help="Execution provider; auto falls back to the CPU with a note.",
)
@click.option("--batch", default="1", show_default=True, help="Batch sizes, comma-separated.")
@input_shape_option
@click.option("--runs", type=int, default=50, show_default=True, help="Timed runs per model.")
@click.option("--warmup", type=int, default=10, show_default=True, help="Warm-up rounds (or 1 s).")
@click.option("--time-budget", type=float, help="Seconds of timed runs per batch size (>= 3 runs).")
@click.option(
    "--min-time",
    type=float,
    default=defaults.LATENCY_MIN_SECONDS,
    show_default=True,
    help="Keep timing past --runs until this many seconds of timed rounds (all models) have "
    f"passed, at most {MAX_ROUNDS} rounds: fast models need hundreds of runs for a stable ratio.",
)
@click.option("--threads", type=int, help="CPU intra-op threads (default: ONNX Runtime's).")
@click.option(
    "--cudnn-conv-algo-search",
    type=click.Choice(CUDNN_ALGO_SEARCH, case_sensitive=False),
    help="CUDA: cuDNN convolution algorithm search.",
)
@click.option("--cuda-graph", is_flag=True, help="CUDA: capture a CUDA graph (fixed shapes).")
@click.option(
    "--trt-sparsity",
    is_flag=True,
    help="TensorRT: enable sparse 2:4 weights (trt_sparsity_enable). CPU/CUDA gain nothing "
    "from zeros.",
)
@click.option("--no-memory", is_flag=True, help="Skip the peak-memory measurement.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random inputs.")
@click.option(
    "--data",
    type=click.Path(),
    help="Time on this data (.npz, image folder) instead of random inputs.",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False),
    help="Write the figures as JSON ('-' = stdout).",
)
def command(
    models,
    provider,
    batch,
    input_shapes,
    runs,
    warmup,
    time_budget,
    min_time,
    threads,
    cudnn_conv_algo_search,
    cuda_graph,
    trt_sparsity,
    no_memory,
    seed,
    data,
    json_path,
) -> None:
    """Measure the latency of MODEL [MODEL...] on identical inputs, runs interleaved."""
    from onnxprune.io import check_model_files
    from onnxprune.runtime.latency import compare_latency

    if runs < 1:
        raise InputError(f"--runs must be >= 1, got {runs}")
    if warmup < 0:
        raise InputError(f"--warmup must be >= 0, got {warmup}")
    if time_budget is not None and time_budget <= 0:
        raise InputError(f"--time-budget must be > 0, got {time_budget}")
    if not min_time >= 0:
        raise InputError(f"--min-time must be >= 0, got {min_time}")
    check_model_files(models)
    options = {}
    if cudnn_conv_algo_search:
        options["cudnn_conv_algo_search"] = cudnn_conv_algo_search
    if cuda_graph:
        options["cuda_graph"] = True
    if trt_sparsity:
        options["trt_sparsity"] = True
    settings = dict(
        provider=provider.lower(),
        batch_sizes=parse_batches(batch),
        input_shapes=parse_input_shapes(input_shapes),
        warmup_runs=warmup,
        runs=runs,
        time_budget_s=time_budget,
        min_seconds=min_time,
        threads=threads,
        seed=seed,
        measure_memory=not no_memory,
        session_options=options,
        data=_load_feeds(data, models[0], parse_input_shapes(input_shapes)) if data else None,
    )
    try:
        comparison = compare_latency(list(models), **settings)
    except InputError as error:
        comparison = _with_attention_lowered(list(models), settings, error)
    for note in comparison.notes:
        click.echo(f"note: {note}", err=True)
    if json_path:
        text = json.dumps(comparison.to_json(), indent=2)
        if json_path == "-":
            click.echo(text)
            return
        Path(json_path).write_text(text + "\n")
    print_comparison(comparison)


def _with_attention_lowered(models: list[str], settings: dict, error: InputError):
    """Time again with every file holding ONNX ``Attention`` in the form onnxprune writes
    (:func:`onnxprune.passes.lower_attention.attention_lowered`), when one does: ONNX
    Runtime's kernel refuses PyTorch's padding masks, so such a file cannot be timed as given.
    The copies keep the files' names (the table's labels) in a temporary folder; a note says
    so. Raises ``error`` (the first failure) when no file holds Attention."""
    import tempfile

    import onnx

    from onnxprune.passes.lower_attention import attention_lowered
    from onnxprune.runtime.latency import compare_latency

    with tempfile.TemporaryDirectory(prefix="onnxprune-bench-") as folder:
        paths, lowered = [], []
        for index, path in enumerate(models):
            model, count = attention_lowered(onnx.load(path))
            if not count:
                paths.append(path)
                continue
            copy = Path(folder) / str(index) / Path(path).name
            copy.parent.mkdir()
            onnx.save(model, str(copy))
            paths.append(str(copy))
            lowered.append(Path(path).name)
        if not lowered:
            raise error
        comparison = compare_latency(paths, **settings)
    comparison.notes.append(
        f"{', '.join(lowered)}: ONNX Runtime refused to run the file as given; timed with its "
        "ONNX Attention nodes in the MatMul/Softmax/MatMul form onnxprune writes (the same "
        "function; ONNX Runtime's Attention kernel refuses padding masks [B, 1, 1, T])"
    )
    return comparison
