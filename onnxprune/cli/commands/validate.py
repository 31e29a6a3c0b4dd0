"""``onnxprune validate REF CAND``: accuracy of both models and fidelity of CAND to REF.

Prints two tables (accuracy per model when the data has labels, fidelity per output) and
optionally writes them as JSON (``--json OUT``, ``-`` for stdout).
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import click

from onnxprune.cli.options import input_shape_option
from onnxprune.cli.task_options import task_options, task_spec
from onnxprune.errors import InputError
from onnxprune.option_text import parse_input_shapes


def preprocess_from_flags(
    config: str | None,
    resize: str | None,
    crop: str | None,
    mean: str | None,
    std: str | None,
    bgr: bool,
    layout: str | None,
):
    """A preprocessing spec from ``--preprocess FILE`` overridden by the individual flags;
    None when nothing was given (the image folder's own config or defaults apply)."""
    from onnxprune.evaluate.preprocess import Preprocess, read_preprocess

    flags = {
        "resize": resize,
        "crop": crop,
        "mean": mean,
        "std": std,
        "channel_order": "BGR" if bgr else None,
        "layout": layout,
    }
    given = {k: v for k, v in flags.items() if v is not None}
    if config is None and not given:
        return None
    base = read_preprocess(config).to_dict() if config else {}
    base.update(given)
    return Preprocess.from_mapping(base)


def _fmt(value, unit: str = "") -> str:
    if value is None:
        return "n/a"
    if unit == "%":
        return f"{value:.2f} %"
    return f"{value:.4g}"


def print_result(result, console) -> None:
    """Rich tables of a :class:`~onnxprune.evaluate.ValidationResult`."""
    from rich.table import Table

    data = result.data
    console.print(
        f"data: {data['source']} ({data['samples']} samples, "
        f"{'labelled' if data['has_labels'] else 'no labels'}); provider {result.provider}"
    )
    accuracy = result.accuracy
    if accuracy["reference"]:
        table = Table(title="accuracy")
        for column in ("metric", "reference", "candidate", "change"):
            table.add_column(column, justify="left" if column == "metric" else "right")
        for name, before in accuracy["reference"].items():
            after = accuracy["candidate"][name]
            unit = result.units.get(name, "")
            change = after - before
            table.add_row(
                name,
                _fmt(before, unit),
                _fmt(after, unit),
                f"{change:+.2f}" if unit == "%" else f"{change:+.4g}",
            )
        console.print(table)
    if result.fidelity and any(result.fidelity.values()):
        table = Table(title="fidelity (candidate vs reference)")
        table.add_column("metric")
        outputs = list(result.fidelity)
        for name in outputs:
            table.add_column(name, justify="right")
        metrics = list(next(iter(result.fidelity.values())))
        for metric in metrics:
            unit = result.units.get(metric, "")
            table.add_row(metric, *[_fmt(result.fidelity[o].get(metric), unit) for o in outputs])
        console.print(table)
    for note in result.notes:
        console.print(f"[yellow]note:[/] {note}")


@click.command("validate")
@click.argument("reference", type=click.Path(dir_okay=False))
@click.argument("candidate", type=click.Path(dir_okay=False))
@click.option(
    "--data",
    metavar="PATH",
    help=".npz (arrays by input name, optional 'labels'), image folder, or synthetic:N "
    "(default synthetic:64).",
)
@click.option(
    "--labels", "labels_key", metavar="KEY", help="Name of the labels array (default labels)."
)
@click.option(
    "--metric",
    "metrics",
    multiple=True,
    help="Metric name or module:function; repeatable (default: every label metric with labels, "
    "every fidelity metric).",
)
@task_options
@click.option("--provider", default="cpu", show_default=True, help="cpu, cuda, tensorrt or auto.")
@click.option(
    "--batch-size", type=int, default=64, show_default=True, help="Evaluation batch size."
)
@click.option("--max-samples", type=int, help="Use at most the first N samples.")
@input_shape_option
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of synthetic data.")
@click.option(
    "--preprocess",
    "preprocess_path",
    type=click.Path(dir_okay=False),
    help="Image preprocessing config (TOML, YAML or JSON) for an image folder.",
)
@click.option("--resize", metavar="N|H,W", help="Images: resize shorter side to N (or to H,W).")
@click.option("--crop", metavar="N|H,W", help="Images: center crop.")
@click.option("--mean", metavar="M[,M,M]", help="Images: per-channel mean (after scaling to 0-1).")
@click.option("--std", metavar="S[,S,S]", help="Images: per-channel std.")
@click.option("--bgr", is_flag=True, help="Images: feed channels in BGR order.")
@click.option(
    "--layout", type=click.Choice(["NCHW", "NHWC"], case_sensitive=False), help="Images: layout."
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False),
    help="Write the results as JSON ('-' = stdout).",
)
@click.option("--quiet", is_flag=True, help="Print nothing but errors.")
def command(
    reference,
    candidate,
    data,
    labels_key,
    metrics,
    provider,
    batch_size,
    max_samples,
    input_shapes,
    seed,
    preprocess_path,
    resize,
    crop,
    mean,
    std,
    bgr,
    layout,
    json_path,
    quiet,
    **task_flags,
) -> None:
    """Compare CANDIDATE with REFERENCE on data: accuracy of both and per-output fidelity."""
    from rich.console import Console

    from onnxprune.evaluate import validate
    from onnxprune.io import check_model_files

    if max_samples is not None and max_samples < 1:
        raise InputError(f"--max-samples must be >= 1, got {max_samples}")
    if json_path and json_path != "-":
        parent = Path(json_path).absolute().parent
        if not parent.is_dir():
            raise InputError(f"cannot write '{json_path}': folder '{parent}' does not exist")
    check_model_files([reference, candidate])
    preprocess = preprocess_from_flags(preprocess_path, resize, crop, mean, std, bgr, layout)
    result = validate(
        reference,
        candidate,
        data,
        metrics=list(metrics) or None,
        labels_key=labels_key,
        provider=provider,
        batch_size=batch_size,
        input_shapes=parse_input_shapes(input_shapes),
        preprocess=preprocess,
        max_samples=max_samples,
        seed=seed,
        task=task_spec(SimpleNamespace(**task_flags)),
    )
    text = json.dumps(result.to_dict(), indent=2)
    if json_path == "-":
        click.echo(text)
    elif json_path:
        try:
            Path(json_path).write_text(text + "\n")
        except OSError as error:
            raise InputError(f"cannot write '{json_path}': {error.strerror or error}") from None
    if not quiet:
        print_result(result, Console(stderr=json_path == "-"))
