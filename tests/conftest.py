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


# --- hypothesis profiles (tests/test_properties.py) ----------------------------------------------
# "default" keeps the property tests within the suite's budget; "long" searches much further.
# Select with VGMIGRATE_HYPOTHESIS_PROFILE=long or pytest's --hypothesis-profile=long. No example
# database: nothing is written into the checkout (a failure prints its minimal account instead).
try:
    import os

    from hypothesis import HealthCheck, settings

    _common = dict(deadline=None, database=None, print_blob=True,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    settings.register_profile("default", max_examples=35, **_common)
    settings.register_profile("long", max_examples=1000, **_common)
    settings.load_profile(os.environ.get("VGMIGRATE_HYPOTHESIS_PROFILE", "default"))
except ImportError:  # hypothesis is in the `test` extra; without it test_properties.py is skipped
    pass
