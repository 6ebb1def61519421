"""End to end: scan, plan, apply, verify, rollback against the in-process sandbox."""

import json

import pytest

from engine_support import client_for, iam_state, open_inventory, run, writes
from migrate import planfile
from migrate.cloudflare import CloudflareClient
from migrate.errors import VgmigrateError
from migrate.executor import apply_plan
from migrate.http import HttpClient, RateLimiter
from migrate.rollback import rollback_run


@pytest.fixture
def planned(sandbox, tmp_path):
    """A scanned demo account and an approved plan that adopts the colliding group."""
    db, plan = tmp_path / "inv.db", tmp_path / "plan.json"
    run(sandbox, db, "scan")
    run(sandbox, db, "plan", "--out", plan, "--on-existing", "adopt")
    return db, plan


def test_full_cycle_restores_the_account_exactly(sandbox, planned):
    db, plan = planned
    before = iam_state(sandbox)
    sandbox.reset_calls()
    run(sandbox, db, "apply", plan, "--yes")
    body = json.loads(plan.read_text())
    creates = sum(s["kind"] == "create_user_group" for s in body["steps"])
    rgs = sum(s["kind"] == "create_resource_group" for s in body["steps"])
    # Minimal writes: one create per group carrying its policy, one member add per group, a resource
    # group only if the account has no account-wide one.
    assert len(writes(sandbox)) == len(body["steps"]) == rgs + creates * 2 + 2  # + adopt PUT + its member add
    after = iam_state(sandbox)
    names = {g[0] for g in after["user_groups"]}
    assert {"Administrator", "DNS", "Workers Platform Admin", "Super Administrator - All Privileges"} <= names
    assert "HTTP Applications" not in names
    run(sandbox, db, "verify")
    assert "nothing to do" in run(sandbox, db, "plan", "--on-existing", "adopt").output.lower()
    run(sandbox, db, "rollback", "--yes")
    assert iam_state(sandbox) == before
    assert "nothing left to undo" in run(sandbox, db, "rollback", "--yes").output


def test_apply_twice_is_apply_once(sandbox, planned):
    db, plan = planned
    run(sandbox, db, "apply", plan, "--yes")
    state = iam_state(sandbox)
    sandbox.reset_calls()
    assert "already applied" in run(sandbox, db, "apply", plan, "--yes").output
    assert writes(sandbox) == [] and iam_state(sandbox) == state


def test_tampered_plan_is_refused_before_any_request(sandbox, planned):
    db, plan = planned
    body = json.loads(plan.read_text())
    body["steps"][1]["request"]["name"] = "Everyone Admin"
    plan.write_text(json.dumps(body))
    sandbox.reset_calls()
    result = run(sandbox, db, "apply", plan, "--yes", expect=1)
    assert "modified after it was written" in result.output
    assert sandbox.calls == []


def test_stale_plan_is_refused_without_writes(sandbox, planned):
    db, plan = planned
    client_for(sandbox).create_user_group("DNS", [])  # someone takes a target name after planning
    sandbox.reset_calls()
    result = run(sandbox, db, "apply", plan, "--yes", expect=1)
    assert "plan is stale" in result.output and "'DNS'" in result.output
    assert writes(sandbox) == []


def test_foreign_plan_is_refused_without_writes(sandbox, planned, tmp_path):
    db, plan = planned
    sandbox.reset_calls()
    result = run(sandbox, db, "--account", "0" * 32, "apply", plan, "--yes", expect=1)
    assert f"for account {sandbox.account_id}" in result.output
    assert writes(sandbox) == []


def test_held_lock_is_refused_naming_the_holder(sandbox, planned):
    db, plan = planned
    inventory = open_inventory(db)
    inventory.acquire_lock("migration", "apply-elsewhere")
    sandbox.reset_calls()
    result = run(sandbox, db, "apply", plan, "--yes", expect=1)
    assert "locked by pid" in result.output and "apply-elsewhere" in result.output
    assert writes(sandbox) == []
    inventory.release_lock("migration")
    run(sandbox, db, "apply", plan, "--yes")


def test_lost_create_response_is_reconciled_not_duplicated(sandbox, planned):
    db, plan = planned
    sandbox.inject("POST", r"/iam/user_groups$", "lose")
    run(sandbox, db, "apply", plan, "--yes")
    names = [g[0] for g in iam_state(sandbox)["user_groups"]]
    assert len(names) == len(set(names))
    run(sandbox, db, "verify")


def test_failed_step_stops_and_apply_again_finishes(sandbox, planned):
    db, plan = planned
    sandbox.inject("POST", r"/members$", "5xx", times=1)  # a POST whose outcome is unknown is not resent
    result = run(sandbox, db, "apply", plan, "--yes", "--parallel", "1", expect=1)
    assert "outcome is unknown; run apply again" in result.output
    run(sandbox, db, "verify", expect=3)
    run(sandbox, db, "apply", plan, "--yes")
    run(sandbox, db, "verify")


def test_verify_reports_drift_with_exit_3(sandbox, planned):
    db, plan = planned
    run(sandbox, db, "apply", plan, "--yes")
    dns = sandbox.state.user_groups_by_name()["DNS"]
    client_for(sandbox).remove_user_group_member(dns["id"], dns["members"][0])
    result = run(sandbox, db, "verify", "--json", expect=3)
    diffs = json.loads(result.stdout)["differences"]  # progress goes to stderr
    kinds = {d["kind"] for d in diffs}
    assert kinds == {"member_missing", "access_not_granted"}


def test_rollback_leaves_changed_groups_alone_unless_forced(sandbox, planned):
    db, plan = planned
    run(sandbox, db, "apply", plan, "--yes")
    dns = sandbox.state.user_groups_by_name()["DNS"]
    outsider = next(m["id"] for m in sandbox.state.snapshot()["members"] if m["id"] not in dns["members"])
    client_for(sandbox).add_user_group_members(dns["id"], [outsider])
    result = run(sandbox, db, "rollback", "--yes", expect=1)
    assert "'DNS'" in result.output and "--force" in result.output
    assert "DNS" in sandbox.state.user_groups_by_name()
    run(sandbox, db, "rollback", "--yes", "--force")
    assert "DNS" not in sandbox.state.user_groups_by_name()


def test_rollback_dry_run_changes_nothing(sandbox, planned):
    db, plan = planned
    run(sandbox, db, "apply", plan, "--yes")
    state = iam_state(sandbox)
    sandbox.reset_calls()
    result = run(sandbox, db, "rollback", "--dry-run")
    assert "would delete User Group 'DNS'" in result.output
    assert writes(sandbox) == [] and iam_state(sandbox) == state


def test_plan_cli_rejects_bad_input(sandbox, tmp_path):
    db = tmp_path / "inv.db"
    assert "no scan recorded" in run(sandbox, db, "plan", expect=1).output
    run(sandbox, db, "scan")
    assert "CF" in run(sandbox, db, "plan", "--name-template", "CF {role}", expect=1).output
    assert "must use only" in run(sandbox, db, "plan", "--name-template", "{nope}", expect=1).output
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    assert "not a vgmigrate plan" in run(sandbox, db, "apply", bad, "--yes", expect=1).output


def test_direct_apply_api_reports_counts(sandbox, planned):
    db, plan = planned
    inventory = open_inventory(db)
    result = apply_plan(client_for(sandbox), inventory, planfile.read(plan), parallel=2)
    assert result.status == "done"
    assert result.counts == {"done": len(json.loads(plan.read_text())["steps"])}


def test_the_token_is_written_nowhere(sandbox, planned, tmp_path):
    db, plan = planned
    outputs = [
        run(sandbox, db, "--debug", "apply", plan, "--yes").output,
        run(sandbox, db, "--debug", "verify").output,
        run(sandbox, db, "show", plan, "--format", "html").output,
        run(sandbox, db, "--debug", "rollback", "--yes").output,
        run(sandbox, db, "--token", "not-the-token", "scan", expect=1).output,
    ]
    for text in outputs:
        assert sandbox.token not in text
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert sandbox.token.encode() not in path.read_bytes(), path


def test_a_partly_rolled_back_run_can_be_applied_again(sandbox, planned):
    db, plan = planned
    run(sandbox, db, "apply", plan, "--yes")
    applied = iam_state(sandbox)
    dns = sandbox.state.user_groups_by_name()["DNS"]
    outsider = next(m["id"] for m in sandbox.state.snapshot()["members"] if m["id"] not in dns["members"])
    client_for(sandbox).add_user_group_members(dns["id"], [outsider])
    run(sandbox, db, "rollback", "--yes", expect=1)  # leaves DNS alone, undoes the rest
    assert "partly_rolled_back" in run(sandbox, db, "status").output
    client_for(sandbox).remove_user_group_member(dns["id"], outsider)
    run(sandbox, db, "apply", plan, "--yes")
    assert iam_state(sandbox) == applied
    run(sandbox, db, "verify")


def test_adopting_sends_only_missing_members_and_rollback_restores_the_rest(sandbox, planned):
    db, plan = planned
    body = json.loads(plan.read_text())
    adopted = next(g for g in body["groups"] if g["action"] == "adopt")
    already = adopted["members"][0]["id"]
    client_for(sandbox).add_user_group_members(adopted["existing_id"], [already])  # members may change after planning
    before = iam_state(sandbox)
    run(sandbox, db, "apply", plan, "--yes")
    sent = next(a for a in open_inventory(db).actions(open_inventory(db).runs("apply")[0]["id"]) if a["kind"] == "add_members" and a["object_id"] == adopted["existing_id"])
    assert already not in sent["request"]["members"] and len(sent["request"]["members"]) == len(adopted["members"]) - 1
    assert already in sent["inverse"]["members"]
    assert "nothing to do" in run(sandbox, db, "plan", "--on-existing", "adopt").output.lower()
    run(sandbox, db, "rollback", "--yes")
    assert iam_state(sandbox) == before


def test_detailed_exitcode_says_whether_there_is_work(sandbox, planned):
    db, plan = planned
    run(sandbox, db, "plan", "--on-existing", "adopt", "--detailed-exitcode", expect=3)
    run(sandbox, db, "apply", plan, "--yes")
    run(sandbox, db, "plan", "--on-existing", "adopt", "--detailed-exitcode", expect=0)


def test_a_rollback_cut_off_midway_is_recorded_as_failed_and_finishes_when_run_again(sandbox, planned):
    db, plan = planned
    before = iam_state(sandbox)
    run(sandbox, db, "apply", plan, "--yes")
    client = CloudflareClient(HttpClient(sandbox.base_url, sandbox.token, max_retries=1, backoff_base=0, limiter=RateLimiter(limit=None)), sandbox.account_id)
    undone = []

    def network_goes_away(action, outcome):
        undone.append(outcome)
        if len(undone) == 1:
            sandbox.stop()

    with pytest.raises(VgmigrateError, match="could not reach"):
        rollback_run(client, open_inventory(db), progress=network_goes_away, parallel=1)  # cut after exactly one undo
    assert [r["status"] for r in open_inventory(db).runs("rollback")] == ["failed"]
    sandbox.start()  # the network is back (on a new port)
    run(sandbox, db, "rollback", "--yes")
    assert iam_state(sandbox) == before
