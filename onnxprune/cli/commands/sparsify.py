"""``onnxprune sparsify``: zero individual weights (unstructured or N:M) and write the model."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import click

from onnxprune.errors import InputError
from onnxprune.sparsity.obs import DEFAULT_DAMP

CPU_NOTE = (
    "ONNX Runtime's CPU and CUDA providers run no faster on zero weights: sparsity saves file "
    "size (with --sparse-storage, above 2/3 sparsity) and gains speed only on TensorRT with 2:4 "
    "(bench --provider tensorrt --trt-sparsity)."
)


def default_output(model: str) -> Path:
    path = Path(model)
    return path.with_name(path.name.removesuffix(".onnx") + ".sparse.onnx")


def print_result(result, out_path: Path, sizes: dict, console=None) -> None:
    """Per-layer table (sparsity before/after, N:M) and a whole-model summary."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    table = Table(title=f"sparsify: {result.criterion}, {result.pattern or result.mode}")
    for column in (
        "layer",
        "op",
        "weights",
        "before",
        "after",
        "2:4" if not result.pattern else result.pattern,
        "note",
    ):
        table.add_column(column, justify="left" if column in ("layer", "op", "note") else "right")
    for layer in result.layers:
        nm = "-" if layer.holds_nm is None else ("yes" if layer.holds_nm else "no")
        table.add_row(
            layer.node, layer.op_type, str(layer.size), f"{layer.sparsity_before:.1%}",
            f"{layer.sparsity_after:.1%}", nm, layer.note,
        )  # fmt: skip
    console.print(table)
    reasons: dict[str, int] = {}
    for reason in result.skipped.values():
        key = reason.split(":")[0]
        reasons[key] = reasons.get(key, 0) + 1
    if reasons:
        console.print("skipped: " + ", ".join(f"{n} {k}" for k, n in sorted(reasons.items())))
    console.print(
        f"weight sparsity over the whole model: {result.sparsity:.1%} "
        f"({result.total_zeros}/{result.total_weights} zero; before "
        f"{result.zeros_before / max(1, result.total_weights):.1%}), {result.seconds:.1f} s"
    )
    console.print(
        f"file: {sizes['before'] / 2**20:.2f} MiB -> {sizes['after'] / 2**20:.2f} MiB "
        f"(gzip {sizes['gzip_before'] / 2**20:.2f} -> {sizes['gzip_after'] / 2**20:.2f} MiB)"
        + (f", {sizes['sparse_tensors']} sparse initializers" if "sparse_tensors" in sizes else "")
    )
    for note in result.notes:
        console.print(f"note: {note}")
    console.print(f"note: {CPU_NOTE}")
    console.print(f"wrote {out_path}")


@click.command("sparsify")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Output (MODEL.sparse.onnx).")
@click.option(
    "--sparsity",
    type=float,
    default=0.5,
    show_default=True,
    help="Share of zero weights over all Conv/ConvTranspose/Gemm/MatMul weights, in [0, 1).",
)
@click.option("--pattern", metavar="N:M", help="Semi-structured N:M (e.g. 2:4) instead.")
@click.option(
    "--criterion",
    default="magnitude",
    show_default=True,
    help="magnitude, wanda, obs, gradient, taylor, fisher, a registered name or "
    "package.module:function.",
)
@click.option("--global", "global_", is_flag=True, help="One ranking across all layers.")
@click.option("--max-ratio", type=float, default=0.95, show_default=True, help="Per-layer cap.")
@click.option("--threshold", type=float, help="Zero the weights whose score is below T.")
@click.option("--keep", type=int, help="Keep the K highest-scoring weights of each layer.")
@click.option("--data", metavar="PATH", help="Calibration data (.npz or image folder).")
@click.option("--samples", type=int, default=256, show_default=True, help="Calibration samples.")
@click.option(
    "--allocation",
    metavar="NAME",
    help="How --sparsity is split over layers: 'uniform' (one fraction), 'error' (per-layer "
    "fractions from measured layer-error curves) or 'output' (those curves times each layer's "
    "measured gain to the model output). Default: output with --data and a data-driven "
    "criterion, else uniform.",
)
@click.option(
    "--bias-correction/--no-bias-correction",
    default=None,
    help="After each OBS layer, shift its bias so its mean output on the calibration data "
    "matches the dense model's (default: on with --criterion obs).",
)
@click.option(
    "--damp",
    type=float,
    default=DEFAULT_DAMP,
    show_default=True,
    help="OBS ridge: H + damp·mean(diag H)·I, also the pull toward the current weights when "
    "upstream error is corrected. Larger trusts the calibration data less.",
)
@click.option(
    "--nm-coverage",
    type=float,
    default=1.0,
    show_default=True,
    help="With --pattern N:M and --data: the share of all counted weights that must hold the "
    "pattern; below what the eligible layers give, the layers whose pattern costs the most "
    "measured output error per weight stay dense until the share is reached.",
)
@click.option(
    "--permute/--no-permute",
    default=None,
    help="With --pattern N:M: reorder each coupled channel group first (producers, consumers "
    "and per-channel parameters together; outputs unchanged, checked) so that every run of M "
    "channels holds channels that complement each other. The written model is the "
    "preprocessed one (constants folded, BatchNorm fused). Default: on with --pattern.",
)
@click.option(
    "--gain-metric",
    default="rel_mse",
    show_default=True,
    metavar="NAME",
    help="How each layer's gain to the model outputs is measured (--allocation output, "
    "--nm-coverage): 'rel_mse' (relative squared error of the outputs) or 'std_mse' (each "
    "output channel's error over its own spread: for raw detection heads, whose box "
    "coordinates in pixels would hide the class scores).",
)
@click.option("--ignore", multiple=True, metavar="GLOB", help="Leave matching layers out entirely.")
@click.option(
    "--protect", multiple=True, metavar="GLOB", help="Keep matching layers dense (still counted)."
)
@click.option("--sparsity-for", multiple=True, metavar="GLOB=S", help="Per-layer sparsity.")
@click.option(
    "--min-size", type=int, default=1024, show_default=True, help="Skip layers with fewer weights."
)
@click.option("--include-depthwise", is_flag=True, help="Sparsify depthwise convolutions too.")
@click.option(
    "--sparse-storage",
    type=click.Choice(["coo", "bitmask"]),
    is_flag=False,
    flag_value="coo",
    default=None,
    help="Store sparse weights compactly: 'coo' (ONNX sparse_initializer, the flag alone) or "
    "'bitmask' (non-zeros + 1 bit per weight, decoded by ops ONNX Runtime folds at load).",
)
@click.option("--force", is_flag=True, help="Overwrite an existing output file.")
@click.option(
    "--json", "json_path", type=click.Path(dir_okay=False), help="Write the plan ('-' = stdout)."
)
@click.option("--quiet", is_flag=True, help="Print nothing but errors.")
def command(
    model, output, sparsity, pattern, criterion, global_, max_ratio, threshold, keep, data,
    samples, allocation, bias_correction, damp, nm_coverage, permute, gain_metric, ignore, protect,
    sparsity_for,
    min_size, include_depthwise, sparse_storage, force, json_path, quiet,
) -> None:  # fmt: skip
    """Zero weights of MODEL's Conv/ConvTranspose/Gemm/MatMul layers and write the model."""
    from onnxprune.io import save_model
    from onnxprune.io.external_data import model_file_bytes, model_files
    from onnxprune.sparsity import sparsify
    from onnxprune.sparsity.storage import STORAGE_FORMATS, model_sizes

    if threshold is not None and global_:
        raise InputError("--threshold and --global exclude each other: choose one mode")
    if not 0 <= sparsity < 1:
        raise InputError(f"--sparsity must be in [0, 1), got {sparsity}")
    out_path = Path(output) if output else default_output(model)
    if out_path.exists() and not force:
        raise InputError(f"output '{out_path}' exists (use --force to overwrite)")
    result = sparsify(
        model, sparsity, pattern=pattern, criterion=criterion, global_=global_,
        threshold=threshold, keep=keep, data=data, ignore=list(ignore),
        protected=list(protect), sparsity_for=list(sparsity_for), min_size=min_size,
        skip_depthwise=not include_depthwise, max_ratio=max_ratio, max_samples=samples,
        allocation=allocation, bias_correction=bias_correction, damp=damp,
        nm_coverage=nm_coverage, permute=permute, gain_metric=gain_metric,
    )  # fmt: skip
    written = result.model
    original = b"".join(f.read_bytes() for f in model_files(model))
    sizes = {"before": len(original), "gzip_before": len(gzip.compress(original, 6))}
    moved: list[str] = []
    if sparse_storage:
        written, moved = STORAGE_FORMATS[sparse_storage](result.model)
        sizes["sparse_tensors"] = len(moved)
        sizes["storage"] = sparse_storage
    after = model_sizes(written)
    sizes.update(after=after.bytes, gzip_after=after.gzip_bytes)
    save_model(written, out_path, input_path=model, force=force)
    sizes["after"] = model_file_bytes(out_path)
    if json_path:
        text = json.dumps(
            {**result.to_dict(), "sizes": sizes, "sparse_initializers": moved}, indent=2
        )
        if json_path == "-":
            click.echo(text)
        else:
            Path(json_path).write_text(text + "\n")
    if not quiet and json_path != "-":
        print_result(result, out_path, sizes)
