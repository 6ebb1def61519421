"""The bad-input corpus (fixtures/bad/cases.json): every case is refused with exactly one line
`Error: <what is wrong>; <what to do>` on stderr, the right exit code, no traceback, and no write
request reaching the sandbox."""

import json
import os
import re
import shutil
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine_support import env_for, run, writes
from migrate.cli import cli
from migrate.inventory import Inventory
from migrate.sandbox import Sandbox
from migrate.sandbox.routing import failure, ok
from migrate.sandbox.seeds import demo_seed

BAD = Path(__file__).resolve().parents[1] / "fixtures" / "bad"
CASES = json.loads((BAD / "cases.json").read_text())["cases"]
# Scan progress ("reading members...") is the only other thing stderr may carry, before the error.
PROGRESS = re.compile(r"^reading [\w ]+\.\.\.$")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """One demo sandbox, a scanned inventory and a good plan of it; cases use copies."""
    tmp = tmp_path_factory.mktemp("bad")
    sb = Sandbox(seed=demo_seed(), rate_limit=None)
    sb.start()
    db, plan = tmp / "scanned.db", tmp / "plan.json"
    run(sb, db, "scan")
    run(sb, db, "plan", "--out", plan, "--on-existing", "suffix")
    yield sb, db, plan
    sb.stop()


def test_the_corpus_is_large_and_covers_every_kind_of_input():
    assert len(CASES) >= 40
    assert len({c["id"] for c in CASES}) == len(CASES)
    kinds = {c["id"].split("/")[0] for c in CASES}
    assert kinds == {"source", "mapping", "plan", "inventory", "token", "account"}
    for case in CASES:
        if "input" in case:
            assert (BAD / case["input"]).is_file(), case["id"]


def misbehave(sb, monkeypatch, how):
    """Sandbox behaviours the corpus needs, patched in for one case (the sandbox itself stays honest)."""
    route = sb._route

    if how == "expired_token":
        def patched(request, api_path, token_valid, ray=""):
            if (api_path or "").endswith("/tokens/verify"):
                return ok({"id": sb.token_id, "status": "expired", "expires_on": "2025-01-01T00:00:00Z"})
            return route(request, api_path, token_valid, ray)
    else:
        _, method, pattern = how.split(":", 2)

        def patched(request, api_path, token_valid, ray=""):
            if request.method == method and re.search(pattern, api_path or ""):
                return failure(403, 10000, "Authentication error")
            return route(request, api_path, token_valid, ray)

    monkeypatch.setattr(sb, "_route", patched)


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_bad_input_is_refused_in_one_line(world, tmp_path, monkeypatch, case):
    sb, scanned, plan = world
    db = tmp_path / "inv.db"
    if "db" in case:
        shutil.copyfile(BAD / case["db"], db)
    else:
        with sqlite3.connect(scanned) as a, sqlite3.connect(db) as b:
            a.backup(b)
    setup = case.get("setup")
    if setup == "locked":  # held by a live process: this one
        Inventory(db).acquire_lock("migration", "apply-20250101T000000000Z")
    elif setup == "readonly":
        os.chmod(db, 0o444)
    elif setup == "directory":
        db.unlink()
        db.mkdir()
    if case.get("sandbox"):
        misbehave(sb, monkeypatch, case["sandbox"])
    given = tmp_path / Path(case["input"]).name if "input" in case else None
    if given:
        shutil.copyfile(BAD / case["input"], given)
    fill = {"input": given, "plan": plan, "missing": tmp_path / "no-such-file"}
    args = [a.format(**fill) for a in case["args"]]
    env = {**env_for(sb, db), **case.get("env", {})}

    sb.reset_calls()
    result = CliRunner().invoke(cli, args, env=env)

    assert result.exit_code == case["exit"], f"{case['id']}: exit {result.exit_code}\n{result.output}"
    assert isinstance(result.exception, SystemExit), result.exception  # no traceback, no crash
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if not PROGRESS.match(line)]
    assert len(errors) == 1 and errors == lines[-1:], f"{case['id']}: stderr is\n{result.stderr}"
    error = errors[0]
    assert error.startswith("Error: ") and case["message"] in error, f"{case['id']}: {error}"
    assert ";" in error, f"{case['id']}: says what is wrong but not what to do: {error}"
    assert writes(sb) == [], f"{case['id']}: a write reached the sandbox: {writes(sb)}"
    assert sb.token not in result.output
    if setup == "readonly":
        os.chmod(db, 0o644)
