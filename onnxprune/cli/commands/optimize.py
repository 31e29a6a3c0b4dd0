"""``onnxprune optimize``: prune toward a target under an accuracy guard, write reports.

Exit codes: 0 target met within the guard; 2 bad usage or input (one line, the input model
untouched); 3 the guard or the target could not be met (the best model found is written).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from onnxprune.cli.options import attention_unit_option
from onnxprune.cli.task_options import attach_task_report, guard_metric, task_options
from onnxprune.errors import GuardNotMetError, InputError, cli_words


@click.command("optimize")
@click.argument("model", type=click.Path(dir_okay=False), required=False)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    help="Output model (default MODEL.pruned.onnx).",
)
@click.option(
    "--target",
    metavar="KIND=VALUE",
    help="macs=F, params=F, latency=F (share kept), ratio=R (share of channels removed) or "
    "sparsity=S (share of all Conv/Gemm/MatMul weights zeroed: weight masks, no speed-up on ORT "
    "CPU/CUDA). Default macs=0.5.",
)
@click.option(
    "--data",
    metavar="PATH",
    help="Calibration data: .npz (arrays by input name, optional 'labels') or an image folder.",
)
@click.option(
    "--eval", "eval_", metavar="PATH", help="Evaluation data (default: a held-out split of --data)."
)
@click.option(
    "--eval-split",
    type=float,
    help="Share of --data held out for evaluation when --eval is not given (default 0.3).",
)
@click.option(
    "--metric",
    help="top1, kl, cosine, agreement, a registered name or module:function (default: top1 with "
    "labels, else kl for class scores and cosine for other outputs, against the original model).",
)
@task_options
@click.option(
    "--max-drop",
    metavar="D|Nx",
    help="Accuracy guard: largest allowed loss of the metric, in its unit (e.g. 1.0 point of "
    "top-1), or Nx = N times the metric's measured noise floor. Default: 1.0 for label metrics, "
    "10x for fidelity metrics (kl, cosine) when no labels are given. A loss within the noise "
    "floor is never rolled back.",
)
@click.option(
    "--noise-sigma",
    type=float,
    help="Input noise (relative to each input's std) under which the unpruned model's metric "
    "change is measured as the guard's noise floor (default 0.01; 0 = sampling noise only).",
)
@click.option(
    "--synthesize",
    type=click.Choice(["auto", "inverted", "gaussian"]),
    help="Without --data: inputs that calibrate the recovery and the guard. inverted: "
    "synthesized by inverting a classifier (class-conditional, smoothness prior), so the "
    "data-driven criterion and recovery run; gaussian: random inputs, data-free methods; auto "
    "(default): inverted when the estimated cost fits a budget of about a minute on 2 cores.",
)
@click.option("--steps", type=int, help="Prune in N steps (default 4).")
@click.option(
    "--criterion",
    help="l1, l2, bn, random, activation, apoz, obs or a registered criterion "
    "(default obs with --data, else l1).",
)
@click.option(
    "--recover",
    metavar="METHOD",
    help="Post-training recovery on --data: none, bias (bias compensation), lsq (least-squares "
    "refit of the readers of removed channels), reconstruct (refit of every layer against the "
    "unpruned model), distill, lsq+distill (Adam on the initializers toward the unpruned model: "
    "KL on logits, squared error on embeddings), "
    "or a registered plug-in (default with --data: lsq, reconstruct from 256 calibration samples; "
    "else none).",
)
@click.option(
    "--allocation",
    type=click.Choice(["global", "uniform", "sensitivity"]),
    help="Removal order: global ranking, uniform share per group, or measured sensitivity "
    "(needs --data) (default sensitivity with --data, else global).",
)
@click.option(
    "--units",
    metavar="KINDS",
    help="Kinds of pruning, comma-separated: channels, blocks (residual units replaced by their "
    "mean output), or both, ranked by measured drop per MAC (needs --data). Default: channels.",
)
@click.option(
    "--search",
    multiple=True,
    metavar="KEY=V1,V2|auto",
    help="Scheme search: run every combination of these values under the same guard and "
    "target and write the best (keys: criterion, allocation, recover, units, max_ratio, steps "
    "or a --kind-option key; kinds of one scheme joined by '+': "
    "units=channels,channels+blocks). 'auto': obs and taylor x lsq and reconstruct with data "
    "(sparsity: gain_metric rel_mse and std_mse). Repeatable.",
)
@click.option(
    "--search-minutes",
    type=float,
    help="Start no scheme of --search after this many minutes (the first always runs).",
)
@click.option(
    "--allow-norm-stats/--no-allow-norm-stats",
    default=None,
    help="Prune channel groups that feed LayerNorm/GroupNorm statistics (the transformer "
    "residual stream; not mask-equivalent, so the guard decides). Default: on.",
)
@click.option(
    "--allow-output-change",
    is_flag=True,
    help="Let a graph output's width follow the pruning (e.g. an encoder's hidden size).",
)
@attention_unit_option(None)
@click.option(
    "--max-ratio", type=float, help="Most of a group's channels that may go (default 0.8)."
)
@click.option(
    "--round-to",
    type=int,
    help="Kept channel counts are multiples of N (default: the provider's channel block, 16 on "
    "AVX-512 CPUs, 8 on AVX2 CPUs and GPUs, so ONNX Runtime keeps its fast kernels; 1 = any count).",
)
@click.option(
    "--ignore", multiple=True, metavar="GLOB", help="Protect layers whose name matches. Repeatable."
)
@click.option(
    "--ratio-for",
    multiple=True,
    metavar="GLOB=R",
    help="Per-layer cap on the share removed. Repeatable.",
)
@click.option(
    "--kind-option",
    "kind_options",
    multiple=True,
    metavar="KEY=VALUE",
    help="An option of one kind of pruning, e.g. sparsity_ranking=criterion, "
    "sparsity_keep_positions=true, sparsity_max_ratio=0.9, min_size=4096, block_criterion=drop, "
    "sensitivity_metric=kl, distill_loss=embedding_cosine (an unknown key exits 2). Repeatable.",
)
@click.option(
    "--input-shape",
    "input_shape",
    multiple=True,
    metavar="NAME:D1,D2,...",
    help="Fix a model input's shape (dynamic dimensions). Repeatable.",
)
@click.option(
    "--provider",
    help="ONNX Runtime provider for evaluation and latency: cpu, cuda, tensorrt, auto (default cpu).",
)
@click.option("--batch-size", type=int, help="Evaluation batch size (default 64).")
@click.option("--max-eval-samples", type=int, help="Evaluate on at most N samples.")
@click.option("--seed", type=int, help="Seed of the held-out split and synthetic data (default 0).")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="TOML or YAML file with these options; flags override it.",
)
@click.option("--report-json", type=click.Path(dir_okay=False), help="Write the JSON report here.")
@click.option(
    "--report-html",
    type=click.Path(dir_okay=False),
    help="Write the self-contained HTML report here.",
)
@click.option(
    "--json", "json_", is_flag=True, help="Print the JSON report on stdout (and nothing else)."
)
@click.option("--force", is_flag=True, help="Overwrite an existing output model.")
@click.option("--quiet", is_flag=True, help="Print nothing but errors.")
def command(model, config_path, eval_, json_, **flags) -> None:
    """Prune MODEL toward --target, keeping the metric within --max-drop of the original."""
    from onnxprune.pipeline.config import merge_options, read_config

    config = read_config(config_path) if config_path else {}
    flags.update({"model": model, "eval": eval_, "json": json_})
    options = merge_options(config, flags)
    if not options.model:
        raise InputError("missing MODEL (give it as an argument or as 'model' in --config)")
    run(options)


def run(options) -> None:
    """Run optimize with merged options; raise GuardNotMetError (exit 3) after writing."""
    from rich.console import Console

    from onnxprune.pipeline.api import default_output, optimize
    from onnxprune.pipeline.outputs import check_writable
    from onnxprune.pipeline.progress import Progress
    from onnxprune.report import print_summary, write_html

    model_path = Path(options.model)
    out_path = Path(options.output) if options.output else default_output(model_path)
    check_writable(out_path, model_path, options.force)
    for report_path in (options.report_json, options.report_html):
        if report_path:
            check_writable(Path(report_path), model_path, force=True)
    console = Console(stderr=True, quiet=options.quiet)
    with Progress(console, enabled=not options.quiet) as progress:
        result = optimize(
            str(model_path),
            target=options.target,
            data=options.data,
            eval_data=options.eval,
            eval_split=options.eval_split,
            metric=guard_metric(options),
            max_drop=options.max_drop,
            noise_sigma=options.noise_sigma,
            synthesize=options.synthesize,
            steps=options.steps,
            criterion=options.criterion,
            allocation=options.allocation,
            units=options.units,
            allow_norm_stats=options.allow_norm_stats,
            allow_output_change=options.allow_output_change,
            attention_unit=options.attention_unit,
            recover=options.recover,
            provider=options.provider,
            max_ratio=options.max_ratio,
            round_to=options.round_to,
            ignore=options.ignore,
            ratio_for=options.ratio_for,
            plan_options=options.kind_options or None,
            input_shapes=options.input_shape,
            batch_size=options.batch_size,
            max_eval_samples=options.max_eval_samples,
            seed=options.seed,
            progress=progress,
            search=options.search or None,
            search_minutes=options.search_minutes,
        )
    result.save(out_path, force=options.force, input_path=model_path)
    result.report.options = _option_record(options)
    attach_task_report(result.report, options, str(model_path), result.model)
    if options.report_json:
        _write_text(options.report_json, result.report.to_json())
    if options.report_html:
        write_html(result.report, options.report_html)
    if options.json:
        sys.stdout.write(result.report.to_json() + "\n")
        sys.stdout.flush()
    if not options.quiet:
        summary_console = Console(stderr=options.json)
        print_summary(result.report, summary_console, words=cli_words)
    if not result.ok:
        raise GuardNotMetError(f"{result.report.reason}; best model written to {out_path}")


def _option_record(options) -> dict:
    from dataclasses import asdict

    record = asdict(options)
    for key in ("json", "quiet", "force"):
        record.pop(key, None)
    return record


def _write_text(path: str, text: str) -> None:
    try:
        Path(path).write_text(text + "\n", encoding="utf-8")
    except OSError as error:
        raise InputError(f"cannot write report '{path}': {error.strerror or error}") from None
