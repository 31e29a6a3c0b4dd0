"""Run corpus cases through the CLI (in-process or as a real subprocess) and check the contract.

The contract for every case and command: exit code 0, 2 or 3; for 2 exactly one stderr line,
starting ``error:``, with no traceback and no "internal error"; the input model and data files
byte-identical afterwards; on a failure (any exit but 0 and 3, which writes the best model
found) no output model or report left behind; after every run no ``onnxprune-*`` temporary
folder left in the temp directory. Every in-process run is guarded
by ``signal.alarm`` so a hang fails the case instead of freezing CI.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner

from onnxprune.cli import cli
from tests.fuzz.corpus import Case, write_case

ALLOWED_EXITS = {0, 2, 3}
CASE_TIMEOUT_S = 60


class CaseTimeout(BaseException):
    """Raised by the alarm; a BaseException so the CLI's own handlers do not swallow it."""


@dataclass
class Outcome:
    command: str
    exit_code: int
    stdout: str
    stderr: str


@contextlib.contextmanager
def alarm(seconds: int) -> Iterator[None]:
    """Raise CaseTimeout in the main thread after ``seconds``."""

    def expire(signum, frame):
        raise CaseTimeout(f"no result after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def command_args(
    command: str, model: Path, data: Path | None, output: Path, synthesize: str = "gaussian"
) -> list[str]:
    """CLI arguments of ``command`` on a tiny model: one step, no channel rounding; without
    data, ``optimize`` synthesizes its inputs as ``synthesize`` says (Gaussian by default:
    inverting every case would multiply the corpus time; a sample runs inverted)."""
    if command == "inspect":
        return ["inspect", str(model)]
    if command == "prune":
        return ["prune", str(model), "-o", str(output), "--ratio", "0.5", "--quiet"]
    args = ["optimize", str(model), "-o", str(output), "--steps", "1", "--round-to", "1"]
    args += ["--report-json", str(output.with_suffix(".json")), "--quiet"]
    if data is not None:
        args += ["--data", str(data), "--recover", "lsq"]
    else:
        args += ["--synthesize", synthesize]
    return args


def run_in_process(args: list[str], timeout_s: int = CASE_TIMEOUT_S) -> Outcome:
    """Invoke the click group in this process; stdout and stderr captured separately."""
    runner = CliRunner()
    with alarm(timeout_s):
        result = runner.invoke(cli, args)
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += f"\nTraceback: uncaught {type(result.exception).__name__}: {result.exception}"
    return Outcome(args[0], result.exit_code, result.stdout, stderr)


def run_subprocess(args: list[str], timeout_s: int = CASE_TIMEOUT_S) -> Outcome:
    """Run ``python -m onnxprune.cli ARGS`` (TMPDIR = this process's temp directory); a
    timeout is reported as exit code -1."""
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ, PYTHONPATH=root, TMPDIR=tempfile.gettempdir())
    try:
        done = subprocess.run(
            [sys.executable, "-m", "onnxprune.cli", *args],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return Outcome(args[0], -1, "", f"no result after {timeout_s} s")
    return Outcome(args[0], done.returncode, done.stdout, done.stderr)


def temp_leftovers() -> set[str]:
    """onnxprune's temporary folders and files in the temp directory (tests point
    ``tempfile.tempdir`` at a private folder: the machine's /tmp is shared)."""
    folder = Path(tempfile.gettempdir())

    def listing() -> set[str]:
        return {entry.name for entry in folder.iterdir() if entry.name.startswith("onnxprune")}

    if not listing():
        return set()
    gc.collect()  # runners remove their folders when collected (only pay for it when needed)
    return listing()


def check_outcome(
    case: Case, outcome: Outcome, folder: Path, before: dict[str, bytes]
) -> list[str]:
    """Every broken promise of ``outcome`` (empty when the contract holds)."""
    problems = []
    label = f"{case.name}/{outcome.command}"
    if outcome.exit_code not in ALLOWED_EXITS:
        problems.append(f"{label}: exit {outcome.exit_code}: {outcome.stderr.strip()[-300:]}")
    lines = [line for line in outcome.stderr.splitlines() if line.strip()]
    if outcome.exit_code == 2 and (len(lines) != 1 or not lines[0].startswith("error: ")):
        problems.append(f"{label}: exit 2 wants one 'error:' line, got {lines[-3:]}")
    if "Traceback" in outcome.stderr or "internal error" in outcome.stderr:
        problems.append(f"{label}: {outcome.stderr.strip()[-300:]}")
    for name, blob in before.items():
        if (folder / name).read_bytes() != blob:
            problems.append(f"{label}: input file {name} was modified")
    if outcome.exit_code not in (0, 3):  # exit 3 writes the best model found, by design
        left = sorted(set(os.listdir(folder)) - set(before))
        if left:
            problems.append(f"{label}: exit {outcome.exit_code} left {left}")
    return problems


def run_case(
    case: Case,
    folder: Path,
    commands: tuple[str, ...],
    *,
    subprocess_run: bool = False,
    synthesize: str = "gaussian",
):
    """Run ``case`` through ``commands``; returns (problems, exit codes by command)."""
    model, data = write_case(case, folder)
    before = {path.name: path.read_bytes() for path in folder.iterdir()}
    problems: list[str] = []
    exits: dict[str, int] = {}
    for command in commands:
        output = folder / f"out_{command}.onnx"
        args = command_args(command, model, data, output, synthesize)
        try:
            outcome = (run_subprocess if subprocess_run else run_in_process)(args)
        except CaseTimeout as timeout:
            problems.append(f"{case.name}/{command}: hang ({timeout})")
            continue
        exits[command] = outcome.exit_code
        problems.extend(check_outcome(case, outcome, folder, before))
        left = temp_leftovers()
        if left:
            problems.append(f"{case.name}/{command}: temporary files left: {sorted(left)}")
        for path in folder.iterdir():  # outputs of a successful run: remove for the next command
            if path.name not in before:
                path.unlink()
    return problems, exits
