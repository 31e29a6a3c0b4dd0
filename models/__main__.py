"""Command line for the model zoo: ``python -m models list`` and ``python -m models build``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import EXPORTERS, MODELS, SMALL_CONFIG, build_onnx


def _list_models() -> int:
    """Print one line per model: name, task, default input shape, default classes, small config."""
    for name, spec in MODELS.items():
        small = ", ".join(f"{key}={value}" for key, value in SMALL_CONFIG[name].items())
        shape = "x".join(str(d) for d in spec.input_shape)
        print(
            f"{name:18s} {spec.task:24s} {shape:12s} classes={spec.num_classes:<5d} small: {small}"
        )
    return 0


def _build(args: argparse.Namespace) -> int:
    """Export one model to ONNX and print the written path."""
    path = build_onnx(
        args.name,
        args.output,
        exporter=args.exporter,
        width=args.width,
        size=args.size,
        num_classes=args.classes,
        opset=args.opset,
        depth=args.depth,
        seed=args.seed,
        dynamic_batch=not args.static_batch,
        keep_batchnorm=args.keep_batchnorm,
    )
    print(path)
    return 0


def _parser() -> argparse.ArgumentParser:
    """Argument parser with the ``list`` and ``build`` subcommands."""
    parser = argparse.ArgumentParser(prog="python -m models", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="list the zoo models")
    build = commands.add_parser("build", help="export one model to ONNX")
    build.add_argument("name", choices=sorted(MODELS))
    build.add_argument("-o", "--output", required=True, help="output .onnx path")
    build.add_argument("--exporter", choices=EXPORTERS, default="torchscript")
    build.add_argument("--width", type=float, default=1.0, help="channel multiplier")
    build.add_argument("--depth", type=float, default=1.0, help="blocks-per-stage multiplier")
    build.add_argument("--size", type=int, default=None, help="input H=W (or L for 1-D)")
    build.add_argument("--classes", type=int, default=None, help="number of classes")
    build.add_argument("--opset", type=int, default=17)
    build.add_argument("--seed", type=int, default=0)
    build.add_argument("--static-batch", action="store_true", help="fixed batch of 1")
    build.add_argument(
        "--keep-batchnorm", action="store_true", help="keep BN nodes (torchscript exporter)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; bad arguments print a one-line error and return 2."""
    args = _parser().parse_args(argv)
    if args.command == "list":
        return _list_models()
    try:
        return _build(args)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
