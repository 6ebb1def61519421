"""The hypothesis profiles (loaded by tests/conftest.py), kept apart so a test can check them.

"default" keeps the property tests within the suite's budget; "long" searches much further.
Select with VGMIGRATE_HYPOTHESIS_PROFILE=long or pytest's --hypothesis-profile=long.

Either way a failure must be reproducible after the run that found it:
- under CI (`CI` set) the examples are derandomized: a run draws the same examples every time,
  so a red CI run fails the same way again, anywhere, with `CI=1` set;
- locally the failing examples are kept in an example database, `.hypothesis/examples` at the
  repository root (gitignored), and replayed first on the next run;
- and a failure prints the `@reproduce_failure(...)` decorator that replays it exactly.
"""

import os
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis.database import DirectoryBasedExampleDatabase

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / ".hypothesis" / "examples"
PROFILES = {"default": 35, "long": 1000}  # examples per property test


def profile_settings(env=None, examples_dir=EXAMPLES):
    """The settings every profile shares, for this environment (os.environ by default)."""
    env = os.environ if env is None else env
    if env.get("CI"):
        where = dict(derandomize=True, database=None)  # derandomize implies no database
    else:
        where = dict(derandomize=False, database=DirectoryBasedExampleDatabase(str(examples_dir)))
    return dict(deadline=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large], **where)


def register_and_load(env=None):
    env = os.environ if env is None else env
    common = profile_settings(env)
    for name, examples in PROFILES.items():
        settings.register_profile(name, max_examples=examples, **common)
    settings.load_profile(env.get("VGMIGRATE_HYPOTHESIS_PROFILE", "default"))
