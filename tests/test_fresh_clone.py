"""A checkout on its own runs every test: nothing the suite needs lives outside the repository."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_contract_tests_run_in_a_checkout_with_nothing_beside_it(tmp_path):
    # A copy of the tests alone, in a folder with no `shared` (or anything else) next to it.
    shutil.copytree(ROOT / "tests", tmp_path / "repo" / "tests", ignore=shutil.ignore_patterns("__pycache__"))
    assert not (tmp_path / "shared").exists()
    env = {k: v for k, v in os.environ.items() if k != "CI"}  # locally, a missing schema once meant a skip
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "-p", "no:xdist",
         "tests/test_contract.py::test_every_operation_in_the_schema_has_a_case",
         "tests/test_sandbox_authentik.py::test_every_operation_in_the_subset_has_a_case"],
        cwd=tmp_path / "repo", env=env, capture_output=True, text=True, timeout=60)
    summary = done.stdout.strip().splitlines()[-1]
    assert done.returncode == 0 and summary.startswith("2 passed") and "skip" not in summary, done.stdout[-2000:]


def test_each_schema_copy_names_its_source_and_matches_its_recorded_hash():
    readme = (ROOT / "tests" / "schemas" / "README.md").read_text()
    copies = sorted((ROOT / "tests" / "schemas").glob("*.json"))
    assert [p.name for p in copies] == ["authentik-openapi-subset.json", "cloudflare-openapi-subset.json"]
    for path in copies:
        row = next(line for line in readme.splitlines() if line.startswith(f"| `{path.name}` |"))
        assert hashlib.sha256(path.read_bytes()).hexdigest() in row, f"{path.name} differs from its recorded copy"
        source = json.loads(path.read_text())["x-source"]
        commit = source.get("commit") or source.get("primary_commit")
        assert len(commit) == 40 and commit in row
