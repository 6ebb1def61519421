"""The real-Authentik lane stays out of the default suite, and without a server it skips, saying
why (or fails, where .ci/run has just started one and sets VGMIGRATE_LANE_REQUIRED)."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def pytest(*args, **env):
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AUTHENTIK_", "VGMIGRATE_LANE", "AK_RUN", "PYTEST_"))}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**base, "AK_RUN": "/nonexistent-authentik-run", **env}, timeout=120)


def test_the_default_suite_deselects_the_lane():
    result = pytest("--collect-only", "tests/real_authentik")
    assert result.returncode == 5 and "deselected" in result.stdout, result.stdout  # 5: no tests selected


def test_without_a_server_the_lane_skips_saying_why_and_fails_where_required():
    closed = {"AUTHENTIK_URL": "http://127.0.0.1:9", "AUTHENTIK_TOKEN": "x"}
    unset = pytest("-m", "real_authentik", "-rs", "tests/real_authentik")  # a clean clone: no server, no env file
    assert unset.returncode == 0 and "skipped" in unset.stdout and "no running Authentik" in unset.stdout, unset.stdout
    required = pytest("-m", "real_authentik", "tests/real_authentik", VGMIGRATE_LANE_REQUIRED="1", **closed)
    assert required.returncode == 1 and "does not answer" in required.stdout, required.stdout
