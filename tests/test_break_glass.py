"""No plan may leave the account with no Super Administrator outside SCIM: `plan` refuses while the
scan's critical finding `no_super_admin_outside_scim` holds, unless --allow-no-break-glass."""

import json

import pytest

from engine_support import open_inventory, run, writes
from migrate.sandbox import Sandbox
from test_iam_rules import RG_SHAPES, seed


def start(break_glass_status):
    """The small IAM-rules account; root@ holds Super Administrator directly, or is pending, or
    holds nothing (then the only Super Administrators would be the virtual groups')."""
    account = seed(rgs=RG_SHAPES["account-wide"])
    root = account["members"][4]
    if break_glass_status is None:
        root["roles"] = []
    else:
        root["status"] = break_glass_status
    sb = Sandbox(seed=account, rate_limit=None)
    return sb.start()


@pytest.mark.parametrize("break_glass", [None, "pending"])
def test_plan_refuses_without_a_break_glass_super_administrator(tmp_path, break_glass):
    sb = start(break_glass)
    try:
        db, plan = tmp_path / "inv.db", tmp_path / "plan.json"
        run(sb, db, "scan")
        refused = run(sb, db, "plan", "--out", plan, expect=1)
        (line,) = [x for x in refused.stderr.splitlines() if x.strip()]
        assert line.startswith("Error: no_super_admin_outside_scim:") and "break-glass" in line
        assert "--allow-no-break-glass" in line and ";" in line
        assert refused.stdout == "" and not plan.exists()
        assert list(open_inventory(db).db.query("select id from plans")) == []

        sb.reset_calls()
        run(sb, db, "plan", "--out", plan, "--allow-no-break-glass")
        body = json.loads(plan.read_text())
        assert body["options"]["allow_no_break_glass"] is True  # the approver sees the override
        assert "no_super_admin_outside_scim" in {f["code"] for f in body["findings"]}
        assert writes(sb) == [] and body["steps"]
    finally:
        sb.stop()


def test_plan_goes_ahead_when_a_super_administrator_holds_the_role_directly(tmp_path):
    sb = start("accepted")
    try:
        db, plan = tmp_path / "inv.db", tmp_path / "plan.json"
        run(sb, db, "scan")
        run(sb, db, "plan", "--out", plan)
        body = json.loads(plan.read_text())
        assert "allow_no_break_glass" not in body["options"]
        assert "no_super_admin_outside_scim" not in {f["code"] for f in body["findings"]}
    finally:
        sb.stop()
