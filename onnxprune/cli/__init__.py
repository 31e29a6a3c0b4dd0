"""The ``onnxprune`` command line: a click group whose subcommands live in ``cli/commands``.

Each module in :mod:`onnxprune.cli.commands` exposes one ``command`` (a :class:`click.Command`);
they are discovered at start-up so that adding a command never edits a shared file.
Errors a user can cause are :class:`~onnxprune.errors.OnnxPruneError`: one line on stderr and the
error's exit code, never a traceback.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys

import click

from onnxprune._version import __version__
from onnxprune.errors import (
    EXIT_BAD_INPUT,
    EXIT_INTERNAL,
    InternalError,
    OnnxPruneError,
    cli_words,
)


class _Group(click.Group):
    """Click group that turns library errors into one-line messages and exit codes."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except OnnxPruneError as error:
            click.echo(f"error: {_one_line(cli_words(str(error)))}", err=True)
            ctx.exit(error.exit_code)
        except click.UsageError as error:  # a bad option or argument: one line, exit 2
            click.echo(f"error: {_one_line(error.format_message())}", err=True)
            ctx.exit(error.exit_code)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except InternalError as error:  # a bug we detected ourselves: no type name needed
            if os.environ.get("ONNXPRUNE_DEBUG"):
                raise
            click.echo(f"internal error: {_one_line(str(error))}", err=True)
            ctx.exit(EXIT_INTERNAL)
        except KeyboardInterrupt:
            click.echo("error: interrupted", err=True)
            ctx.exit(130)
        except Exception as error:  # last line of defence: never a traceback
            if os.environ.get("ONNXPRUNE_DEBUG"):
                raise
            click.echo(
                f"internal error: {type(error).__name__}: {_one_line(str(error))} "
                "(set ONNXPRUNE_DEBUG=1 for the traceback)",
                err=True,
            )
            ctx.exit(EXIT_INTERNAL)


def _one_line(message: str) -> str:
    return " ".join(message.split()) or "unknown error"


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="onnxprune")
def cli() -> None:
    """Prune exported ONNX models so they run faster and smaller, and prove the result."""


def _register_commands() -> None:
    from onnxprune.cli import commands

    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        command = getattr(module, "command", None)
        if isinstance(command, click.Command):
            cli.add_command(command)


_register_commands()


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point; click's usage errors exit with code 2."""
    try:
        cli.main(args=argv, prog_name="onnxprune", standalone_mode=True)
    except SystemExit as exit_:
        code = (
            exit_.code
            if isinstance(exit_.code, int)
            else (0 if exit_.code is None else EXIT_BAD_INPUT)
        )
        sys.exit(code)
