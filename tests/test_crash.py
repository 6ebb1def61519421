"""A crash before and after every single step of a 20-group apply, each followed by a resumed
apply (end state exactly the plan, no duplicates) and, separately, by a rollback (exactly as before)."""

import sqlite3

import pytest

from engine_support import client_for, iam_state, open_inventory, run
from migrate import planfile
from migrate.executor import apply_plan
from migrate.rollback import rollback_run
from migrate.sandbox import Sandbox
from migrate.sandbox.seeds import generate_seed
from migrate.verify import verify_run

SEED = generate_seed(groups=20, members=200, random_seed=7)


def copy_db(src, dst):
    """Copy an inventory consistently (its WAL may not be checkpointed yet)."""
    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)
    return dst


class Crash(BaseException):
    """Stands for kill -9 at that point: nothing after it runs."""


def make_plan(tmp):
    """Scan the seed and plan it (name conflicts get a suffix: the seed has an IdP-locked one)."""
    db, plan_path = tmp / "template.db", tmp / "plan.json"
    with Sandbox(seed=SEED, rate_limit=None) as sb:
        before = iam_state(sb)
        run(sb, db, "scan")
        run(sb, db, "plan", "--out", plan_path, "--on-existing", "suffix")
    return db, planfile.read(plan_path), before


@pytest.fixture(scope="module")
def approved(tmp_path_factory):
    """One scan and plan (the inventory is copied per case), and the state a clean apply reaches."""
    tmp = tmp_path_factory.mktemp("crash")
    db, plan, before = make_plan(tmp)
    with Sandbox(seed=SEED, rate_limit=None) as sb:
        apply_plan(client_for(sb), open_inventory(copy_db(db, tmp / "reference.db")), plan)
        after = iam_state(sb)
    assert sorted(s["id"] for s in plan["steps"]) == sorted(STEP_IDS)
    return db, plan, before, after


def _step_ids():
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        return [s["id"] for s in make_plan(Path(tmp))[1]["steps"]]


STEP_IDS = _step_ids()


def test_the_matrix_covers_every_kind_of_step():
    kinds = {s.split(".")[-1] if "." in s else s for s in STEP_IDS}
    assert len(STEP_IDS) >= 40 and "members" in kinds


@pytest.mark.parametrize("then", ["resume", "rollback"])
@pytest.mark.parametrize("point", ["before_call", "after_call"])
@pytest.mark.parametrize("step", STEP_IDS)
def test_crash_then_recover(approved, tmp_path, step, point, then):
    template, plan, before, after = approved
    db = copy_db(template, tmp_path / "inv.db")

    def crash(where, sid):
        if (where, sid) == (point, step):
            raise Crash

    with Sandbox(seed=SEED, rate_limit=None) as sb:
        client = client_for(sb)
        with pytest.raises(Crash):
            apply_plan(client, open_inventory(db), plan, parallel=1, hook=crash)
        if then == "resume":
            result = apply_plan(client, open_inventory(db), plan, parallel=1)
            assert result.status == "done"
            assert iam_state(sb) == after  # exactly the plan: no duplicates, nothing missing
            assert verify_run(client, open_inventory(db))[1] == []
        else:
            result = rollback_run(client, open_inventory(db))
            assert result.status == "rolled_back", result.message
            assert iam_state(sb) == before
