"""A short chaos run: a generated account migrated on a sandbox that fails, drops responses and
rate-limits, with the apply crashed at random steps and resumed, then verified and rolled back.
After every write the sandbox accepts, AccessWatch checks that nobody lost access and nobody gained
a role the plan does not list. `bench/chaos.py` is the long run, with real SIGKILLs.
"""

import random
import sqlite3

import pytest

from engine_support import iam_state, open_inventory, run
from migrate import planfile
from migrate.cloudflare import CloudflareClient
from migrate.errors import VgmigrateError
from migrate.executor import apply_plan
from migrate.rollback import rollback_run
from migrate.sandbox import Sandbox
from migrate.sandbox.seeds import generate_seed
from migrate.sandbox.watch import AccessWatch
from migrate.verify import verify_run


def copy_db(src, dst):
    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)
    return dst


def client_for(sb):
    """Retries back off for 1 ms instead of half a second: the faults are the point, not the waits."""
    return CloudflareClient.connect(sb.base_url, sb.token, sb.account_id, backoff_base=0.001, backoff_cap=0.01)


class Crash(BaseException):
    """Stands for kill -9: nothing after it runs."""


def until_done(attempt, limit=40):
    """Run attempt() until it reports success; a fault or crash is followed by another run."""
    for _ in range(limit):
        try:
            if attempt():
                return True
        except (Crash, VgmigrateError):
            pass
    return False


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_chaos_ends_exactly_planned_then_exactly_as_before(tmp_path, seed):
    rnd = random.Random(seed)
    account = generate_seed(groups=25, members=250, random_seed=seed)
    db, plan_path = tmp_path / "inv.db", tmp_path / "plan.json"
    with Sandbox(seed=account, rate_limit=None) as ref:  # the end state a clean apply reaches
        before = iam_state(ref)
        run(ref, db, "scan")
        run(ref, db, "plan", "--out", plan_path, "--on-existing", "suffix")
        plan = planfile.read(plan_path)
        apply_plan(client_for(ref), open_inventory(copy_db(db, tmp_path / "ref.db")), plan)
        planned = iam_state(ref)

    with Sandbox(seed=account, rate_limit=None, fail_5xx=0.08, lose_responses=0.05, random_seed=seed) as sb:
        watch = AccessWatch(sb, plan)
        crash_at = set(rnd.sample([s["id"] for s in plan["steps"]], k=min(4, len(plan["steps"]))))

        def hook(point, step_id):
            if step_id in crash_at and rnd.random() < 0.5:
                crash_at.discard(step_id)
                raise Crash

        def apply_once():
            return apply_plan(client_for(sb), open_inventory(db), plan, parallel=4, hook=hook).status in ("done", "nothing_to_do")

        assert until_done(apply_once), "apply never finished"
        assert iam_state(sb) == planned  # exactly the plan: no duplicate groups or members
        assert verify_run(client_for(sb), open_inventory(db))[1] == []
        assert until_done(lambda: rollback_run(client_for(sb), open_inventory(db)).status in ("rolled_back", "nothing_to_do"))
        assert iam_state(sb) == before
        watch.stop()
    assert watch.checks >= len(plan["steps"]) and watch.violations == []


def test_the_watch_sees_a_member_gaining_a_role_the_plan_does_not_list(tmp_path):
    account = generate_seed(groups=5, members=40, random_seed=4)
    db, plan_path = tmp_path / "inv.db", tmp_path / "plan.json"
    with Sandbox(seed=account, rate_limit=None) as sb:
        run(sb, db, "scan")
        run(sb, db, "plan", "--out", plan_path, "--on-existing", "suffix")
        plan = planfile.read(plan_path)
        watch = AccessWatch(sb, plan)
        group = plan["groups"][0]
        listed = {m["id"] for g in plan["groups"] for m in g["members"]}
        outsider = next(m for m in sb.state.members if m not in listed)
        run(sb, db, "apply", plan_path, "--yes")
        gid = sb.state.user_groups_by_name()[group["name"]]["id"]
        client_for(sb).add_user_group_members(gid, [outsider])
        watch.stop()
    assert any(outsider in v and "does not list" in v for v in watch.violations)
