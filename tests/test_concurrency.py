"""Two applies at once: on one inventory (the second refuses, naming the holder, the lock id and how
to clear a stale lock), and from two inventories on one account (the second plan is stale, or loses
the race cleanly: never a duplicate group or member)."""

import subprocess
import sys
import threading
from collections import Counter

import pytest
from click.testing import CliRunner

from engine_support import client_for, env_for, iam_state, open_inventory, run, writes
from migrate import planfile
from migrate.cli import cli
from migrate.executor import apply_plan
from migrate.rollback import rollback_run


def planned(sandbox, tmp_path, name):
    db, plan = tmp_path / f"{name}.db", tmp_path / f"{name}.json"
    run(sandbox, db, "scan")
    run(sandbox, db, "plan", "--out", plan, "--on-existing", "suffix")
    return db, plan


def no_duplicates(sandbox):
    snap = sandbox.state.snapshot()
    names = Counter(g["name"].casefold() for g in snap["user_groups"])
    assert [n for n, k in names.items() if k > 1] == []
    for group in snap["user_groups"]:
        assert len(group["members"]) == len(set(group["members"])), group["name"]
    wide = [r for r in snap["resource_groups"] if r["scope"] == {"key": f"com.cloudflare.api.account.{sandbox.account_id}", "objects": [{"key": "*"}]}]
    assert len(wide) <= 2  # the seed's own two; never one more per apply


def test_a_second_apply_on_the_same_inventory_refuses_naming_the_holder(sandbox, tmp_path):
    db, plan = planned(sandbox, tmp_path, "inv")
    second = {}

    def meanwhile(point, step_id):
        if not second:  # the first apply holds the lock and is about to send its first call
            calls = len(writes(sandbox))
            second["result"] = CliRunner().invoke(cli, ["apply", str(plan), "--yes"], env=env_for(sandbox, db))
            second["writes"] = len(writes(sandbox)) - calls

    result = apply_plan(client_for(sandbox), open_inventory(db), planfile.read(plan), parallel=1, hook=meanwhile)
    assert result.status == "done"
    refused = second["result"]
    assert refused.exit_code == 1 and second["writes"] == 0
    (line,) = [x for x in refused.stderr.splitlines() if x.strip()]
    assert line.startswith("Error: the inventory is locked by pid ") and f"(lock id {result.run_id}," in line
    assert f"`vgmigrate unlock {result.run_id}`" in line and "if that process is gone" in line
    assert len(writes(sandbox)) == len(planfile.read(plan)["steps"])  # every step sent once
    run(sandbox, db, "verify")
    no_duplicates(sandbox)


def test_a_lock_left_by_a_dead_process_is_cleared_with_unlock_or_taken_over(sandbox, tmp_path):
    db, plan = planned(sandbox, tmp_path, "inv")
    inventory = open_inventory(db)
    inventory.acquire_lock("migration", "apply-dead")
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    inventory.db.execute("update locks set pid = ? where run_id = 'apply-dead'", [int(gone.stdout)])
    inventory.db.conn.commit()
    status = run(sandbox, db, "status").output
    assert "lock id apply-dead" in status
    run(sandbox, db, "unlock", "apply-dead", "--yes")
    inventory.acquire_lock("migration", "apply-dead-again")
    inventory.db.execute("update locks set pid = ? where run_id = 'apply-dead-again'", [int(gone.stdout)])
    inventory.db.conn.commit()
    run(sandbox, db, "apply", plan, "--yes")  # a dead holder on this host: taken over
    assert inventory.locks() == []


def test_a_second_inventory_applying_the_same_migration_is_refused_as_stale(sandbox, tmp_path):
    db_a, plan_a = planned(sandbox, tmp_path, "a")
    db_b, plan_b = planned(sandbox, tmp_path, "b")
    run(sandbox, db_a, "apply", plan_a, "--yes")
    applied = iam_state(sandbox)
    sandbox.reset_calls()
    refused = run(sandbox, db_b, "apply", plan_b, "--yes", expect=1)
    assert "plan is stale" in refused.stderr and "now exists" in refused.stderr and "Scan and plan again" in refused.stderr
    assert writes(sandbox) == [] and iam_state(sandbox) == applied
    run(sandbox, db_b, "scan")  # what the message says to do: B then sees A's groups
    # B does not know A made those groups: planning again names each one, not a silent duplicate.
    assert "name_conflict" in run(sandbox, db_b, "plan", expect=1).stderr
    no_duplicates(sandbox)


def test_a_second_inventory_is_stale_even_while_the_first_apply_is_unfinished(sandbox, tmp_path):
    db_a, plan_a = planned(sandbox, tmp_path, "a")
    db_b, plan_b = planned(sandbox, tmp_path, "b")

    class Crash(BaseException):
        pass

    def crash(point, step_id):
        if point == "after_call" and step_id == "g002":
            raise Crash

    with pytest.raises(Crash):
        apply_plan(client_for(sandbox), open_inventory(db_a), planfile.read(plan_a), parallel=1, hook=crash)
    sandbox.reset_calls()
    assert "plan is stale" in run(sandbox, db_b, "apply", plan_b, "--yes", expect=1).stderr
    assert writes(sandbox) == []
    run(sandbox, db_a, "apply", plan_a, "--yes")  # A resumes: reconciles, creates nothing twice
    run(sandbox, db_a, "verify")
    no_duplicates(sandbox)


def test_two_inventories_racing_on_one_account_never_duplicate(sandbox, tmp_path):
    """Both pass the stale check before either writes; the account refuses the second group of a
    name, so one apply finishes, the other stops at its first step, and neither undoes the other."""
    before = iam_state(sandbox)
    runs = {name: planned(sandbox, tmp_path, name) for name in ("a", "b")}
    both_checked = threading.Barrier(2, timeout=10)
    results, errors = {}, []

    def apply(name):
        db, plan = runs[name]
        first = []

        def hook(point, step_id):
            if point == "before_call" and not first:
                first.append(step_id)
                both_checked.wait()

        try:
            results[name] = apply_plan(client_for(sandbox), open_inventory(db), planfile.read(plan), parallel=1, hook=hook)
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=apply, args=(name,)) for name in runs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert sorted(r.status for r in results.values()) == ["done", "failed"]
    no_duplicates(sandbox)
    winner = next(n for n, r in results.items() if r.status == "done")
    loser = next(n for n in runs if n != winner)
    assert "failed" in results[loser].message and "run apply again" in results[loser].message
    run(sandbox, runs[winner][0], "verify")
    assert "plan is stale" in run(sandbox, runs[loser][0], "apply", runs[loser][1], "--yes", expect=1).stderr
    applied = iam_state(sandbox)
    # The loser's rollback has nothing of the winner's to undo.
    loser_run = open_inventory(runs[loser][0]).runs("apply")[0]["id"]
    assert rollback_run(client_for(sandbox), open_inventory(runs[loser][0]), loser_run).status in ("nothing_to_do", "rolled_back")
    assert iam_state(sandbox) == applied
    run(sandbox, runs[winner][0], "rollback", "--yes")
    assert iam_state(sandbox) == before
