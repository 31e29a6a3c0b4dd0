"""The fuzz corpus through the CLI: exit 0/2/3 only, one clean line for 2, no leftovers.

In-process runs replace the peak-memory child process of ``optimize`` (a bounded subprocess,
600 s timeout, that re-runs a model already run here) by an empty measurement, to keep the
corpus fast; the subprocess sample runs the real thing. Latency is timed on its fixed rounds
(tests/conftest.py: the default minimum of timed seconds was 70 % of this corpus's time).
"""

from __future__ import annotations

import collections
import tempfile
from pathlib import Path

import pytest

import onnxprune.runtime.memory as memory
from tests.fuzz.corpus import Case, chain_model, data_cases, model_cases
from tests.fuzz.runner import run_case

MODEL_COMMANDS = ("inspect", "prune", "optimize")
DEFAULT_MODEL_CASES = 120
DEFAULT_DATA_CASES = 50
SLOW_MODEL_CASES = 900
SLOW_DATA_CASES = 200


@pytest.fixture(autouse=True)
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temp directory of our own (the machine's /tmp is shared) and no memory child."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    monkeypatch.setattr(
        memory, "measure_session_memory", lambda *a, **k: memory.MemoryUsage(None, None, [])
    )
    return folder


def _run_corpus(cases: list[Case], root: Path) -> tuple[list[str], collections.Counter]:
    problems: list[str] = []
    exits: collections.Counter = collections.Counter()
    for index, case in enumerate(cases):
        commands = ("optimize",) if case.data is not None else MODEL_COMMANDS
        found, codes = run_case(case, root / f"case{index}", commands)
        problems.extend(found)
        exits.update(f"{command}:{code}" for command, code in codes.items())
    return problems, exits


def test_default_corpus(tmp_path: Path) -> None:
    cases = model_cases(DEFAULT_MODEL_CASES) + data_cases(DEFAULT_DATA_CASES)
    problems, exits = _run_corpus(cases, tmp_path / "cases")
    assert not problems, "\n".join(problems[:20])
    assert exits["inspect:2"] > 0 and exits["inspect:0"] > 0  # the corpus has both kinds
    assert exits["optimize:2"] > 0 and exits["optimize:0"] > 0


def test_subprocess_sample(tmp_path: Path) -> None:
    wanted = {"valid_base": 0, "cycle": 2, "raw_data_short": 2}
    cases = [case for case in model_cases(DEFAULT_MODEL_CASES) if case.name in wanted]
    for case in cases:
        problems, exits = run_case(case, tmp_path / case.name, ("inspect",), subprocess_run=True)
        assert not problems, problems
        assert exits == {"inspect": wanted[case.name]}
    nan_data = next(case for case in data_cases(DEFAULT_DATA_CASES) if case.name == "data_nan")
    problems, exits = run_case(nan_data, tmp_path / "nan", ("optimize",), subprocess_run=True)
    assert not problems, problems
    assert exits == {"optimize": 2}


INVERTED_MODEL_CASES = 40


@pytest.mark.slow
def test_inverted_synthesis_sample(tmp_path: Path) -> None:
    """Data-free optimize that inverts the model (the default for small classifiers) keeps the
    same contract on a sample of the mutated models."""
    problems: list[str] = []
    exits: collections.Counter = collections.Counter()
    for index, case in enumerate(model_cases(INVERTED_MODEL_CASES, seed=2)):
        found, codes = run_case(
            case, tmp_path / f"case{index}", ("optimize",), synthesize="inverted"
        )
        problems.extend(found)
        exits.update(codes.values())
    assert not problems, "\n".join(problems[:20])
    assert exits[0] > 0 and exits[2] > 0


@pytest.mark.slow
def test_full_corpus(tmp_path: Path) -> None:
    cases = model_cases(SLOW_MODEL_CASES, seed=1) + data_cases(SLOW_DATA_CASES, seed=1)
    assert len(cases) >= 1000
    problems, _ = _run_corpus(cases, tmp_path / "cases")
    assert not problems, "\n".join(problems[:20])


@pytest.mark.slow
def test_ten_thousand_node_chain(tmp_path: Path) -> None:
    case = Case("chain_10k", chain_model(10_000).SerializeToString())
    problems, exits = run_case(case, tmp_path / "chain", ("inspect", "prune"))
    assert not problems, problems
    assert exits == {"inspect": 0, "prune": 0}
