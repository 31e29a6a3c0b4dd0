"""``onnxprune sensitivity``: per-group drop of the model's outputs at several pruning ratios."""

from __future__ import annotations

import json
from pathlib import Path

import click

from onnxprune.cli.options import attention_unit_option, input_shape_option
from onnxprune.errors import InputError
from onnxprune.option_text import parse_input_shapes


def parse_ratios(text: str) -> list[float]:
    """``0.1,0.3,0.5`` -> [0.1, 0.3, 0.5]; each in (0, 1)."""
    try:
        values = [float(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise InputError(f"--ratios expects numbers like 0.1,0.3,0.5, got {text!r}") from None
    if not values or any(not 0.0 < v < 1.0 for v in values):
        raise InputError(f"--ratios must be numbers in (0, 1), got {text!r}")
    return values


def load_calibration(path: str, model, input_shapes):
    """The calibration Dataset of ``--data`` (.npz or image folder: a folder of few photos gives
    random crops of each, :mod:`onnxprune.evaluate.imagefolder`), conformed to the model; an
    image folder is read as ``optimize`` reads it (the pixel scale the graph asks for, the
    normalization probe)."""
    from onnxprune.defaults import PHOTO_CALIBRATION_SAMPLES
    from onnxprune.evaluate import load_data, model_input_specs
    from onnxprune.evaluate.normalization_probe import photo_classifier
    from onnxprune.graph.class_names import declared_class_names
    from onnxprune.graph.input_affine import image_pixel_scales

    specs = model_input_specs(model)
    return load_data(
        path,
        specs,
        input_shapes,
        augment_to=PHOTO_CALIBRATION_SAMPLES,
        pixel_scales=image_pixel_scales(model),
        classify=photo_classifier(model),
        class_names=declared_class_names(model),
    )


def print_table(table, console=None, limit: int = 40) -> None:
    """Rich table of the drops, most sensitive group first."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    view = Table(title=f"sensitivity ({table.metric} drop, {table.samples} samples)")
    view.add_column("group", overflow="fold")
    view.add_column("channels", justify="right")
    for ratio in table.ratios:
        view.add_column(f"{ratio:g}", justify="right")
    for group in table.ranked()[:limit]:
        drops = {p.ratio: p.drop for p in group.points}
        view.add_row(
            group.name,
            str(group.size * group.width),
            *(f"{drops[r]:.4g}" if r in drops else "-" for r in table.ratios),
        )
    console.print(view)
    if len(table.groups) > limit:
        console.print(f"... {len(table.groups) - limit} less sensitive groups not shown")
    console.print(f"{table.runs} model runs in {table.seconds:.1f} s")


@click.command("sensitivity")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option(
    "--data", required=True, metavar="PATH", help="Calibration data: .npz or an image folder."
)
@click.option(
    "--ratios", default="0.1,0.3,0.5,0.7", show_default=True, help="Share of a group removed."
)
@click.option("--criterion", default="l1", show_default=True, help="Which channels go first.")
@click.option(
    "--metric", default="kl", show_default=True, help="kl, top1, rel_mse or a registered name."
)
@click.option("--max-samples", type=int, default=128, show_default=True)
@attention_unit_option()
@input_shape_option
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write the table.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), help="Write a PNG plot.")
@click.option("--quiet", is_flag=True, help="Print nothing but errors.")
def command(
    model,
    data,
    ratios,
    criterion,
    metric,
    max_samples,
    attention_unit,
    input_shapes,
    json_path,
    plot_path,
    quiet,
) -> None:
    """Measure, per channel group, how much pruning it alone hurts MODEL's outputs."""
    from rich.console import Console
    from rich.markup import escape

    from onnxprune.analysis import analyze, attention_head_dim
    from onnxprune.passes.prepare import prepare
    from onnxprune.sensitivity import measure_sensitivity
    from onnxprune.sensitivity.plot import write_sensitivity_plot

    ratio_list = parse_ratios(ratios)
    shapes = parse_input_shapes(input_shapes)
    console = Console(stderr=True, quiet=quiet)
    original, prepared, _ = prepare(model, shapes)
    calibration = load_calibration(data, original, shapes)
    for note in calibration.notes:  # how the data was read (crops, pixel scale, normalization)
        console.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
    analysis = analyze(prepared, shapes, head_dim=attention_head_dim(attention_unit))
    with console.status("measuring sensitivity") as status:
        table = measure_sensitivity(
            analysis,
            calibration,
            ratios=ratio_list,
            criterion=criterion,
            metric=metric,
            max_samples=max_samples,
            original=original,
            progress=lambda message: status.update(message),
        )
    if json_path:
        try:
            Path(json_path).write_text(json.dumps(table.to_dict(), indent=2))
        except OSError as error:
            raise InputError(f"cannot write '{json_path}': {error.strerror or error}") from None
    if plot_path:
        write_sensitivity_plot(table, plot_path)
    if not quiet:
        print_table(table, Console())
