"""Progress of long commands (apply, verify, rollback) on stderr, so stdout stays clean.

On a terminal: a bar redrawn in place. Anywhere else (CI, a log file, a pipe): a line such as
`applying: 120/400 steps` every `VGMIGRATE_PROGRESS_SECONDS` seconds (default 5), also while
nothing finishes (a rate-limit wait, a slow endpoint), and, once any was printed, a last one when
the command ends normally. A command done within the interval prints none.
"""

import os
import sys
import threading
import time

import click

DEFAULT_SECONDS = 5.0


def interval():
    try:
        return max(0.0, float(os.environ.get("VGMIGRATE_PROGRESS_SECONDS", DEFAULT_SECONDS)))
    except ValueError:
        return DEFAULT_SECONDS


class StepProgress:
    """`with StepProgress("applying", 400, "steps", done=16) as bar: bar.update(1)`; thread-safe.

    done: how many were finished before this run (a resumed apply): the count starts there, and
    the caller does not report them again, so the count never passes the total.
    """

    def __init__(self, label, total, unit="steps", done=0, tty=None, every=None):
        self.label, self.total, self.unit = label, total, unit
        self.count = min(done, total)
        self.tty = sys.stderr.isatty() if tty is None else tty
        self.every = interval() if every is None else every
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._last, self._printed = 0.0, None
        self._ticker = None

    def line(self):
        return f"{self.label}: {self.count:,}/{self.total:,} {self.unit}"

    def __enter__(self):
        self._last = time.monotonic()
        if self.tty:
            self._draw()
        elif self.every > 0:  # a line every few seconds even while nothing finishes
            self._ticker = threading.Thread(target=self._tick, name="vgmigrate-progress", daemon=True)
            self._ticker.start()
        return self

    def update(self, n=1):
        with self._lock:
            self.count = min(self.total, self.count + n)
            if self.tty:
                self._draw()
            elif time.monotonic() - self._last >= self.every:
                self._emit()

    def __exit__(self, kind=None, *exc):
        self._stop.set()
        if self._ticker:
            self._ticker.join()
        with self._lock:
            if self.tty:
                click.echo("", err=True)
            elif kind is None and self._printed is not None and self.count != self._printed:
                self._emit()  # the last count, after a normal end (an error says its own line)

    def _tick(self):
        while not self._stop.wait(self.every):
            with self._lock:
                if time.monotonic() - self._last >= self.every:
                    self._emit()

    def _emit(self):
        click.echo(self.line(), err=True)
        self._last, self._printed = time.monotonic(), self.count

    def _draw(self):
        width = 30
        filled = int(width * self.count / self.total) if self.total else width
        click.echo(f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] {self.count:,}/{self.total:,} {self.unit}", err=True, nl=False)
