"""Shared fixtures: an in-process Cloudflare sandbox per test, and a clock that never really waits."""

import threading

import pytest

from migrate.sandbox import Sandbox
from migrate.sandbox.seeds import demo_seed


@pytest.fixture
def sandbox():
    """A started sandbox with the demo account and no rate limit; stopped after the test."""
    sb = Sandbox(seed=demo_seed(), rate_limit=None)
    sb.start()
    try:
        yield sb
    finally:
        sb.stop()


class FakeClock:
    """monotonic() and sleep() that only move when slept on, so waits are instant and exact."""

    def __init__(self):
        self.now = 0.0
        self.sleeps = []
        self._lock = threading.Lock()

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds


@pytest.fixture
def clock():
    return FakeClock()


# --- hypothesis profiles (tests/hypothesis_profiles.py: derandomized under CI, an example
# database locally, and a failure prints what reproduces it) -------------------------------------
try:
    from hypothesis_profiles import register_and_load
except ImportError:  # hypothesis is in the `test` extra; without it the property tests are skipped
    pass
else:
    register_and_load()
