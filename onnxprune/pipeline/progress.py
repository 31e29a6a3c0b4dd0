"""Progress display of ``optimize`` on stderr (rich): a spinner with the current phase and
elapsed time, and one log line per pruning step. Disabled, it is a no-op."""

from __future__ import annotations

from rich.console import Console
from rich.progress import Progress as RichProgress
from rich.progress import SpinnerColumn, TextColumn, TimeElapsedColumn


class Progress:
    """Callable progress hook: ``progress("message")`` shows the phase; messages that start
    with ``step`` or ``protected`` are also kept as log lines."""

    def __init__(self, console: Console, enabled: bool = True) -> None:
        self.console = console
        self.enabled = enabled
        self._bar: RichProgress | None = None
        self._task = None

    def __enter__(self) -> Progress:
        if self.enabled:
            self._bar = RichProgress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
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
        if self._bar is None:
            return
        self._bar.update(self._task, description=message)
        if message.startswith(("step", "protected", "warning")):
            self._bar.console.print(f"  {message}", highlight=False)
