"""Real English sentences without any data set: the docstrings of the Python standard library.

Sentences are split from the first paragraphs of stdlib module, class and function docstrings,
kept when they have 6 to 40 words, de-duplicated, in a fixed order, then shuffled with a seed
and cut into disjoint calibration and evaluation sets.
"""

from __future__ import annotations

import importlib
import inspect
import random
import re

MODULES = (
    "argparse",
    "asyncio",
    "calendar",
    "collections",
    "csv",
    "datetime",
    "decimal",
    "difflib",
    "email",
    "fractions",
    "functools",
    "gzip",
    "heapq",
    "html",
    "http.client",
    "imaplib",
    "inspect",
    "ipaddress",
    "itertools",
    "json",
    "logging",
    "mailbox",
    "math",
    "os",
    "pathlib",
    "pickle",
    "queue",
    "random",
    "re",
    "shutil",
    "smtplib",
    "socket",
    "sqlite3",
    "statistics",
    "string",
    "subprocess",
    "tarfile",
    "tempfile",
    "textwrap",
    "threading",
    "timeit",
    "turtle",
    "unittest",
    "urllib.parse",
    "uuid",
    "wave",
    "xml.dom.minidom",
    "zipfile",
    "zoneinfo",
)


def _docstrings() -> list[str]:
    texts = []
    for name in MODULES:
        try:
            module = importlib.import_module(name)
        except Exception:  # a module missing from this Python build
            continue
        texts.append(inspect.getdoc(module) or "")
        for _, member in sorted(vars(module).items()):
            if inspect.isclass(member) or inspect.isfunction(member):
                texts.append(inspect.getdoc(member) or "")
    return texts


def sentences() -> list[str]:
    """Every usable sentence, de-duplicated, in a deterministic order."""
    seen: dict[str, None] = {}
    for text in _docstrings():
        paragraph = " ".join(text.split("\n\n")[0].split())
        for sentence in re.split(r"(?<=[.!?])\s+", paragraph):
            words = sentence.split()
            if 6 <= len(words) <= 40 and sentence[:1].isupper() and ">>>" not in sentence:
                seen.setdefault(sentence, None)
    return list(seen)


def split(
    calibration: int, evaluation: int, seed: int = 0, extra: int = 0
) -> tuple[list[str], list[str]]:
    """Disjoint seeded samples of ``calibration`` and ``evaluation`` sentences; ``extra``
    more calibration sentences come from after the evaluation ones, so the evaluation
    sentences do not change with it."""
    pool = sentences()
    if len(pool) < calibration + evaluation + extra:
        raise ValueError(f"only {len(pool)} sentences available")
    random.Random(seed).shuffle(pool)
    end = calibration + evaluation
    return pool[:calibration] + pool[end : end + extra], pool[calibration:end]
