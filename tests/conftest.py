"""Shared fixtures: an in-process Cloudflare sandbox per test."""

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
