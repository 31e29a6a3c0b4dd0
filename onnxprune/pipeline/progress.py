"""Progress display of ``optimize`` on stderr (rich): the current phase with elapsed time, and a
bar with the time left for every phase that reports counts. Disabled, it is a no-op.

The library reports progress as plain messages (``progress("message")``), so any layer can
report without depending on the display. A message with a count ``k/N`` (``"sensitivity
3/27: conv5"``, ``"evaluating 128/512 samples"``) drives a bar: the text before the count names
the phase, a new phase starts a new bar, and the estimate of the time left comes from the rate
so far. Messages that start with ``step``, ``protected``, ``warning``, ``note`` or ``guard`` are kept
as log lines.
"""

from __future__ import annotations

import re

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as RichProgress

_COUNT = re.compile(r"^(?P<phase>.*?)(?P<done>\d+)\s*/\s*(?P<total>\d+)")
_LOGGED = ("step", "protected", "warning", "note", "guard")
# Said once the model and the data passed their checks: before it, a run that fails on bad
# input must leave exactly one line on stderr (its error), so plain lines wait for it.
INPUTS_CHECKED = "model and data checked"


def parse_count(message: str) -> tuple[str, int, int] | None:
    """``(phase, done, total)`` of a message with a ``k/N`` count, else None. ``done`` is
    k - 1 for phases that announce the item they start (``sensitivity 3/27: ...``) and k for
    counts of finished work (``128/512 samples``)."""
    match = _COUNT.match(message)
    if match is None:
        return None
    done, total = int(match["done"]), int(match["total"])
    if total <= 0 or done > total:
        return None
    phase = match["phase"].strip(" :-") or message
    finished = "samples" in message[match.end() :].split(":")[0] or done == total
    return phase, done if finished else max(done - 1, 0), total


class Progress:
    """Callable progress hook (see module docstring). On a console that is not a terminal
    (a pipe, a CI log) bars cannot redraw: each new phase is printed once as a plain line, from
    :data:`INPUTS_CHECKED` on (seconds into the run; a bad-input error before it stays the only
    line on stderr)."""

    def __init__(self, console: Console, enabled: bool = True) -> None:
        self.console = console
        self.enabled = enabled
        self._bar: RichProgress | None = None
        self._task = None
        self._phase: str | None = None
        self._plain = enabled and not console.is_terminal
        self._last_plain: str | None = None
        self._checked = False

    def __enter__(self) -> Progress:
        if self.enabled and not self._plain:
            self._bar = RichProgress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(bar_width=24),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("left"),
                TimeRemainingColumn(),
                console=self.console,
                transient=True,
            )
            self._bar.__enter__()
            self._task = self._bar.add_task("starting", total=None)
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
            self._bar = None

    def __call__(self, message: str) -> None:
        if self._plain:
            self._print_plain(message)
            return
        if self._bar is None:
            return
        count = parse_count(message)
        if count is None:
            if self._phase is not None:
                self._new_task(message, None)
            else:
                self._bar.update(self._task, description=message)
        else:
            phase, done, total = count
            if phase != self._phase:
                self._new_task(message, total)
                self._phase = phase
            self._bar.update(self._task, description=message, completed=done, total=total)
        if message.startswith(_LOGGED):
            self._bar.console.print(f"  {message}", highlight=False)

    def _print_plain(self, message: str) -> None:
        if message == INPUTS_CHECKED:
            self._checked = True
        if not self._checked:
            return
        count = parse_count(message)
        phase = count[0] if count is not None else message
        if message.startswith(_LOGGED) or phase != self._last_plain:
            self.console.print(f"  {message}", highlight=False, soft_wrap=True)
        self._last_plain = phase

    def _new_task(self, message: str, total: int | None) -> None:
        assert self._bar is not None
        self._bar.remove_task(self._task)
        self._task = self._bar.add_task(message, total=total)
        self._phase = None
