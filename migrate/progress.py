"""Progress of long commands (scan, apply, verify, rollback, rehearse) on stderr, so stdout stays clean.

On a terminal: a bar redrawn in place. Anywhere else (CI, a log file, a pipe): a line such as
`applying: 120/400 steps; about 2 min left (280 calls at the API rate limit)` every
`VGMIGRATE_PROGRESS_SECONDS` seconds (default 5), also while nothing finishes (a rate-limit wait,
a slow endpoint), and, once any was printed, a last one when the command ends normally. A command
done within the interval prints none. The time left is the rate-limit bound of the calls still to
make (RateLimiter.seconds_for), said once it rounds to a second or more.
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


def about(seconds):
    """A time left as people say it: 40 s, 4 min, 1 h 5 min."""
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


def time_left(calls, seconds):
    """'; about 4 min left (950 calls at the API rate limit)', or '' when it rounds to no time or is unknown."""
    if not calls or seconds is None or seconds < 0.5:
        return ""
    return f"; about {about(seconds)} left ({calls:,} calls at the API rate limit)"


class Ticker:
    """Calls `say()` every `every` seconds, on a thread of its own, until stopped."""

    def __init__(self, every, say):
        self.every, self.say = every, say
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vgmigrate-progress", daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.wait(self.every):
            self.say()

    def stop(self):
        self._stop.set()
        self._thread.join()


class ScanProgress:
    """Scan progress on stderr: a bar per list, redrawn in place on a terminal. Anywhere else, a line
    when a list starts and, every interval while it is read (also while waiting for the rate limit),
    how far it is and the time left for the pages still to fetch: a 2,000-group scan at the real rate
    limit is minutes of waiting, and a log must show it is alive.

    total(): how many items the list being read said it has; eta(calls): seconds for that many
    more calls (RateLimiter.seconds_for). `watch(listings)` gives the listings whose unread pages
    are the calls still to make."""

    def __init__(self, total=lambda: None, eta=lambda calls: None, tty=None, every=None):
        self.total, self.eta = total, eta
        self.tty = sys.stderr.isatty() if tty is None else tty
        self.every = interval() if every is None else every
        self.phase, self.count, self.phase_total = None, 0, None
        self.listings = []
        self._lock = threading.Lock()
        self._ticker = None

    def watch(self, listings):
        self.listings = listings  # a list the scan may still add to

    def __call__(self, phase, n=1):
        with self._lock:
            if phase != self.phase:
                self._finish()
                self.phase, self.count = phase, 0
                if not self.tty:
                    click.echo(f"reading {phase}...", err=True)
                    if self._ticker is None and self.every > 0:
                        self._ticker = Ticker(self.every, self._tick)
            self.count += n
            self.phase_total = self.total()  # read now: the page this item came from has just arrived
            if self.tty and (self.count % 100 == 1 or n > 1):
                click.echo("\r" + self.line(), err=True, nl=False)

    def calls_left(self):
        return sum(left for listing in list(self.listings) if (left := getattr(listing, "calls_left", lambda: None)()))

    def line(self):
        total = self.phase_total
        if not total or total < self.count:
            return f"reading {self.phase}: {self.count:,}"
        done = int(30 * self.count / total)
        return f"reading {self.phase} [{'#' * done}{'.' * (30 - done)}] {self.count:,}/{total:,}"

    def _tick(self):
        with self._lock:
            if self.phase is None:
                return
            total = f"/{self.phase_total:,}" if self.phase_total and self.phase_total >= self.count else ""
            calls = self.calls_left()
            click.echo(f"reading {self.phase}: {self.count:,}{total}{time_left(calls, self.eta(calls))}", err=True)

    def _finish(self):
        if self.tty and self.phase:
            click.echo("\r" + self.line(), err=True)
        self.phase = None

    def finish(self):
        """The end of the scan (or of its failure): the last bar is drawn, the ticker stops."""
        with self._lock:
            self._finish()
        if self._ticker:
            self._ticker.stop()
            self._ticker = None


class StepProgress:
    """`with StepProgress("applying", 400, "steps", done=16) as bar: bar.update(1)`; thread-safe.

    done: how many were finished before this run (a resumed apply): the count starts there, and
    the caller does not report them again, so the count never passes the total.
    """

    def __init__(self, label, total, unit="steps", done=0, tty=None, every=None, eta=None):
        self.label, self.total, self.unit = label, total, unit
        self.eta = eta  # seconds for n more calls (RateLimiter.seconds_for); each unit left is about one call
        self.count = min(done, total)
        self.tty = sys.stderr.isatty() if tty is None else tty
        self.every = interval() if every is None else every
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._last, self._printed = 0.0, None
        self._ticker = None

    def line(self):
        left = self.total - self.count
        return f"{self.label}: {self.count:,}/{self.total:,} {self.unit}" + (time_left(left, self.eta(left)) if self.eta else "")

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
