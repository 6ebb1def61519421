"""Traps an operator must not fall into (issue 22): a rollback that misses live changes, silent
long runs, outputs that disagree, and small surprises of the command line."""

import json

from engine_support import iam_state, open_inventory, run


def migrated(sandbox, db):
    run(sandbox, db, "scan")
    run(sandbox, db, "plan", "--on-existing", "suffix", "--out", db.parent / "plan.json")
    run(sandbox, db, "apply", db.parent / "plan.json", "--yes")
    return open_inventory(db).runs("apply")[-1]["id"]


# --- 3. a rollback never silently misses live changes --------------------------------------------


def test_an_apply_with_nothing_to_do_records_no_run_and_rollback_undoes_the_live_one(sandbox, tmp_path):
    db = tmp_path / "inv.db"
    before = iam_state(sandbox)
    first = migrated(sandbox, db)
    run(sandbox, db, "scan")
    run(sandbox, db, "plan", "--on-existing", "suffix", "--out", tmp_path / "again.json")
    assert json.loads((tmp_path / "again.json").read_text())["steps"] == []
    again = run(sandbox, db, "apply", tmp_path / "again.json", "--yes")
    assert "no run was recorded" in again.output
    assert [r["id"] for r in open_inventory(db).runs()] == [first]
    undone = run(sandbox, db, "rollback", "--yes")
    assert f"run {first} " in undone.output and "still live" in undone.output
    assert iam_state(sandbox) == before


def test_rollback_skips_an_empty_run_an_older_version_recorded(sandbox, tmp_path):
    db = tmp_path / "inv.db"
    before = iam_state(sandbox)
    first = migrated(sandbox, db)
    inv = open_inventory(db)
    plan_id = inv.run(first)["plan_id"]
    inv.start_run({"id": "apply-29990101T000000000Z", "kind": "apply", "plan_id": "0" * 64, "account_id": sandbox.account_id})
    inv.update_run("apply-29990101T000000000Z", status="done", message="all steps done", finished_at="2999-01-01T00:00:00Z")
    dry = run(sandbox, db, "rollback", "--dry-run")
    assert f"run {first} " in dry.output and "would" in dry.output
    run(sandbox, db, "rollback", "--yes")
    assert iam_state(sandbox) == before
    assert inv.run(first)["status"] == "rolled_back" and inv.run(first)["plan_id"] == plan_id
    assert "nothing left to undo" in run(sandbox, db, "rollback", "--yes").output  # twice is once


# --- 5. the auditor's questions -------------------------------------------------------------------


def test_a_rolled_back_runs_message_says_so(sandbox, tmp_path):
    db = tmp_path / "inv.db"
    first = migrated(sandbox, db)
    run(sandbox, db, "rollback", "--yes")
    runs = {r["id"]: r for r in json.loads(run(sandbox, db, "history", "--json").output)["runs"]}
    rollback = next(r for r in runs.values() if r["kind"] == "rollback")
    assert runs[first]["status"] == "rolled_back"
    assert runs[first]["message"] == f"all steps done; rolled back at {rollback['finished_at']} by {rollback['id']}"
