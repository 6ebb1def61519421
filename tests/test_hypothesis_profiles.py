"""A property test's failure can be reproduced after the run that found it (tests/hypothesis_profiles.py)."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.database import DirectoryBasedExampleDatabase

from hypothesis_profiles import EXAMPLES, ROOT, profile_settings


def _drawn(env, examples_dir, fail_from=None):
    """The integers one run of a small property draws, and the error it raised (None if it passed)."""
    seen = []

    @settings(max_examples=25, **profile_settings(env, examples_dir))
    @given(st.integers())
    def prop(x):
        seen.append(x)
        assert fail_from is None or x < fail_from

    try:
        prop()
    except AssertionError as err:
        return seen, err
    return seen, None


def test_under_ci_every_run_draws_the_same_examples(tmp_path):
    first, _ = _drawn({"CI": "true"}, tmp_path)
    again, _ = _drawn({"CI": "true"}, tmp_path)
    assert first == again and len(set(first)) > 5
    assert not list(tmp_path.iterdir())  # and nothing written: no example database under CI


def test_locally_runs_differ_but_a_failure_is_kept_and_replayed_first(tmp_path):
    first, _ = _drawn({}, tmp_path / "db")
    again, _ = _drawn({}, tmp_path / "db")
    assert first != again  # random search: each run looks somewhere new

    _, err = _drawn({}, tmp_path / "db", fail_from=1000)
    assert err is not None and list((tmp_path / "db").iterdir())  # the failing example was saved
    replayed, err = _drawn({}, tmp_path / "db", fail_from=1000)
    assert err is not None and replayed[0] >= 1000  # the next run starts from it


@pytest.mark.parametrize("env", [{"CI": "true"}, {}], ids=["CI", "local"])
def test_a_failure_prints_what_reproduces_it(tmp_path, env):
    _, err = _drawn(env, tmp_path / "db", fail_from=1000)
    notes = "\n".join(getattr(err, "__notes__", []))
    assert "prop(\n    x=1000,\n)" in notes  # the minimal failing example
    assert "@reproduce_failure(" in notes


def test_this_session_uses_the_settings_for_its_environment():
    import os

    active = settings()
    if os.environ.get("CI"):
        assert active.derandomize and active.database is None
    else:
        assert not active.derandomize and isinstance(active.database, DirectoryBasedExampleDatabase)
        assert active.database.path == EXAMPLES
    assert active.print_blob


def test_the_local_example_database_is_not_committed():
    assert EXAMPLES.relative_to(ROOT).parts[0] == ".hypothesis"
    assert "/.hypothesis/" in (ROOT / ".gitignore").read_text().splitlines()
