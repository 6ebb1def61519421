"""The IAM rules that live in migrate/iam.py, and the defects their copies once caused.

Each end-to-end test runs the CLI against an in-process sandbox seeded with a small account of the
shape that matters (zone-scoped and unnamed resource groups, an existing group with members, deny
policies, mixed-case emails), so a rule that breaks shows up as the user would see it.
"""

import csv
import json
import subprocess
import sys

import pytest

from engine_support import client_for, iam_state, open_inventory, run, writes
from migrate import iam, planfile
from migrate.executor import apply_plan
from migrate.rollback import rollback_run
from migrate.sandbox import Sandbox
from migrate.verify import compare

ACCT = "ab" * 16
KEY = f"com.cloudflare.api.account.{ACCT}"
ZONE = f"com.cloudflare.api.account.zone.{'cd' * 16}"
PG = {"Administrator": "1" * 32, "DNS": "2" * 32, "Firewall": "3" * 32}
WIDE = {"key": KEY, "objects": [{"key": "*"}]}
ZONE_SCOPE = {"key": KEY, "objects": [{"key": ZONE}]}


def tag(n):
    return f"{n:032x}"


# --- pure rules --------------------------------------------------------------------------------


@pytest.mark.parametrize("scope, wide", [
    (WIDE, True),
    ([WIDE], True),  # a list of one scope, as some responses have it
    (ZONE_SCOPE, False),  # the account's key with a zone object: one domain, not the account
    ({"key": KEY, "objects": [{"key": "*"}, {"key": ZONE}]}, False),
    ({"key": f"com.cloudflare.api.account.{'ef' * 16}", "objects": [{"key": "*"}]}, False),  # another account
    ({"key": KEY, "objects": []}, False),
    ({}, False),
])
def test_is_account_wide(scope, wide):
    assert iam.is_account_wide({"id": "r", "scope": scope}, ACCT) is wide
    assert iam.is_account_wide({"id": "r", "name": None, "scope": scope}, ACCT) is wide  # a name plays no part


def policy(access, pg, rg, pid=None):
    return {"id": pid, "access": access, "permission_groups": [{"id": pg}], "resource_groups": [{"id": rg}]}


def test_grants_needs_an_allow_on_an_account_wide_group_and_no_deny():
    assert iam.grants([policy("allow", "P", "R")], "P", {"R"})
    assert not iam.grants([policy("allow", "P", "Z")], "P", {"R"})  # domain-scoped
    assert not iam.grants([policy("deny", "P", "R")], "P", {"R"})  # a deny never grants
    assert not iam.grants([policy("allow", "P", "R"), policy("deny", "P", "Z")], "P", {"R"})  # not the whole account
    assert iam.grants([policy("allow", "P", "R"), policy("deny", "Q", "R")], "P", {"R"})
    assert not iam.grants([policy("allow", "Q", "R")], "P", {"R"})


def test_same_policies_ignores_ids_order_and_expansion_but_not_access():
    read = [{"id": "x", "access": "allow", "permission_groups": [{"id": "P", "name": "n"}], "resource_groups": [{"id": "R", "scope": WIDE}]}]
    assert iam.same_policies(read, [policy("allow", "P", "R")])
    assert not iam.same_policies(read, [policy("deny", "P", "R")])
    assert iam.write_policies(read) == [policy("allow", "P", "R", "x")]


def test_identity_of_names_and_emails():
    assert iam.name_key("DNS") == iam.name_key(" dns ") == iam.name_key("D\u200bNS")
    assert iam.name_key("Super  Administrator\u00a0- All") == iam.name_key("super administrator - all")
    assert iam.email_key(" Mixed.Case@Example.COM ") == "mixed.case@example.com"
    assert iam.is_reserved_name(" cf team") and not iam.is_reserved_name("Team CF")


def test_held_roles_count_only_account_wide_allows_not_taken_back():
    member = {"roles": [{"name": "Billing"}], "policies": [
        {"access": "allow", "permission_groups": [{"name": "DNS"}], "resource_groups": [{"id": "z", "scope": ZONE_SCOPE}]},
        {"access": "allow", "permission_groups": [{"name": "Firewall"}, {"name": "Analytics"}], "resource_groups": [{"id": "w", "scope": WIDE}]},
        {"access": "deny", "permission_groups": [{"name": "Analytics"}], "resource_groups": [{"id": "z", "scope": ZONE_SCOPE}]},
    ]}
    assert iam.held_permission_group_names(member, ACCT) == {"billing", "firewall"}


# --- a small account of the shape under test -----------------------------------------------------

MEMBERS = {  # member id -> (email as Cloudflare stores it, virtual groups)
    tag(1): ("ada@example.com", ["Administrator", "DNS"]),
    tag(2): ("Bob.Mixed@Example.com", ["DNS"]),  # Cloudflare keeps the case; the IdP sends lower case
    tag(3): ("cy@example.com", ["Firewall"]),
    tag(4): ("dee@example.com", []),  # in the existing DNS group only
    tag(5): ("root@example.com", []),  # the break-glass Super Administrator
}

RG_SHAPES = {
    "none": [],
    "account-wide": [{"id": tag(101), "name": KEY, "scope": WIDE}],
    "zone-scoped": [{"id": tag(102), "name": "one domain", "scope": ZONE_SCOPE}],
    "both": [{"id": tag(102), "name": "one domain", "scope": ZONE_SCOPE}, {"id": tag(103), "name": "all", "scope": WIDE}],
    "several account-wide": [{"id": tag(104), "name": "b", "scope": WIDE}, {"id": tag(103), "name": "a", "scope": WIDE}],
    "unnamed": [{"id": tag(105), "scope": WIDE}, {"id": tag(106), "scope": ZONE_SCOPE}],
}


def seed(rgs=(), existing_dns=None):
    """existing_dns: members of a User Group named "dns" that someone made by hand, or None."""
    user_groups = []
    if existing_dns is not None:
        zone_rg = next((rg["id"] for rg in rgs if not iam.is_account_wide(rg, ACCT)), None)
        policies = [policy("allow", PG["Firewall"], zone_rg, tag(201))] if zone_rg else []
        user_groups.append({"id": tag(301), "name": "dns", "policies": policies, "members": existing_dns, "scim_managed": False})
    members = [
        {"id": mid, "email": email, "status": "accepted",
         "user": {"id": tag(400 + n), "email": email, "first_name": "A", "last_name": "B", "two_factor_authentication_enabled": True},
         "roles": ["r-super"] if mid == tag(5) else [], "policies": []}
        for n, (mid, (email, _)) in enumerate(MEMBERS.items(), 1)
    ]
    return {
        "account": {"id": ACCT, "name": "Shapes Inc", "type": "enterprise"},
        "permission_groups": [{"id": pid, "name": name, "meta": {"label": name.lower(), "scopes": "com.cloudflare.api.account"}}
                              for name, pid in PG.items()]
        + [{"id": "9" * 32, "name": "Super Administrator - All Privileges", "meta": {"label": "super", "scopes": "com.cloudflare.api.account"}}],
        "roles": [{"id": "r-super", "name": "Super Administrator - All Privileges", "description": "", "permissions": {}}],
        "members": members,
        "resource_groups": list(rgs),
        "user_groups": user_groups,
        "scim_groups": [{"id": f"cloudflare-v1-{role.lower()}", "displayName": f"CF-{ACCT} - {role}", "system": True} for role in PG],
        "scim_users": [
            {"id": tag(400 + n), "userName": iam.email_key(email), "active": True, "groups": [f"cloudflare-v1-{r.lower()}" for r in roles]}
            for n, (mid, (email, roles)) in enumerate(MEMBERS.items(), 1) if roles
        ],
    }


@pytest.fixture
def account(request):
    started = []

    def start(**kwargs):
        sb = Sandbox(seed=seed(**kwargs), rate_limit=None)
        sb.start()
        started.append(sb)
        return sb

    yield start
    for sb in started:
        sb.stop()


def rg_of_every_policy(sb):
    """Every resource group the sandbox's User Groups' policies point at, with its scope."""
    snap = sb.state.snapshot()
    rgs = {r["id"]: r for r in snap["resource_groups"]}
    return [rgs[r["id"]] for g in snap["user_groups"] for p in g["policies"] for r in p["resource_groups"]]


def plan_body(path):
    return json.loads(path.read_text())


# --- 1. resource group shapes: plan, apply, verify, re-plan, rollback ------------------------------


@pytest.mark.parametrize("shape", sorted(RG_SHAPES))
def test_every_resource_group_shape_migrates_and_rolls_back(account, tmp_path, shape):
    sb = account(rgs=RG_SHAPES[shape])
    db, plan = tmp_path / "inv.db", tmp_path / "plan.json"
    before = iam_state(sb)
    run(sb, db, "scan")
    run(sb, db, "plan", "--out", plan)
    body = plan_body(plan)
    wide = sorted(rg["id"] for rg in RG_SHAPES[shape] if iam.is_account_wide(rg, ACCT))
    creates_rg = [s for s in body["steps"] if s["kind"] == "create_resource_group"]
    assert len(creates_rg) == (0 if wide else 1)
    if wide:  # the lowest id, whatever the names
        assert body["resource_group"]["id"] == wide[0]
    run(sb, db, "apply", plan, "--yes")
    policies_rgs = rg_of_every_policy(sb)
    assert policies_rgs and all(iam.is_account_wide(rg, ACCT) for rg in policies_rgs)
    run(sb, db, "verify")
    run(sb, db, "scan")
    assert "nothing to do" in run(sb, db, "plan").output.lower()
    run(sb, db, "rollback", "--yes")
    assert iam_state(sb) == before  # zone and unnamed groups untouched, ours gone


def test_lost_resource_group_create_is_never_taken_for_a_zone_group(account, tmp_path):
    sb = account(rgs=RG_SHAPES["zone-scoped"])
    db, plan = tmp_path / "inv.db", tmp_path / "plan.json"
    run(sb, db, "scan")
    run(sb, db, "plan", "--out", plan)
    sb.inject("POST", r"/iam/resource_groups$", "lose")  # created, but the answer never arrives
    run(sb, db, "apply", plan, "--yes")
    policies_rgs = rg_of_every_policy(sb)
    assert policies_rgs and all(iam.is_account_wide(rg, ACCT) for rg in policies_rgs)
    assert len(sb.state.snapshot()["resource_groups"]) == 2  # the zone group and exactly one new one
    run(sb, db, "verify")


def test_rollback_of_a_pending_resource_group_create_leaves_the_zone_group(account, tmp_path):
    sb = account(rgs=RG_SHAPES["zone-scoped"])
    db, plan = tmp_path / "inv.db", tmp_path / "plan.json"
    before = iam_state(sb)
    run(sb, db, "scan")
    run(sb, db, "plan", "--out", plan)

    class Crash(BaseException):
        pass

    def crash(point, step_id):
        if (point, step_id) == ("after_call", "rg"):
            raise Crash  # the resource group exists; the journal still says pending

    with pytest.raises(Crash):
        apply_plan(client_for(sb), open_inventory(db), planfile.read(plan), hook=crash)
    assert rollback_run(client_for(sb), open_inventory(db)).status == "rolled_back"
    assert iam_state(sb) == before


# --- 2. re-planning after a finished apply has nothing to do, in every --on-existing mode ----------


@pytest.mark.parametrize("mode", ["fail", "adopt", "suffix"])
def test_replan_after_apply_has_no_steps(account, tmp_path, mode):
    sb = account(rgs=RG_SHAPES["account-wide"], existing_dns=None if mode == "fail" else [tag(4)])
    db, plan = tmp_path / "inv.db", tmp_path / "plan.json"
    run(sb, db, "scan")
    run(sb, db, "plan", "--out", plan, "--on-existing", mode)
    run(sb, db, "apply", plan, "--yes")
    state = iam_state(sb)
    run(sb, db, "scan")
    again = tmp_path / "again.json"
    assert "nothing to do" in run(sb, db, "plan", "--out", again, "--on-existing", mode).output.lower()
    assert plan_body(again)["steps"] == []
    sb.reset_calls()
    run(sb, db, "apply", again, "--yes")
    assert writes(sb) == [] and iam_state(sb) == state  # no second group, no second grant


def test_suffix_names_a_new_group_beside_the_existing_one_once(account, tmp_path):
    sb = account(rgs=RG_SHAPES["account-wide"], existing_dns=[tag(4)])
    db, plan = tmp_path / "inv.db", tmp_path / "plan.json"
    run(sb, db, "scan")
    run(sb, db, "plan", "--out", plan, "--on-existing", "suffix")
    run(sb, db, "apply", plan, "--yes")
    names = sorted(sb.state.user_groups_by_name())
    assert names == ["Administrator", "DNS (2)", "Firewall", "dns"]


# --- 3. adoption: who gains the role, named everywhere ---------------------------------------------


def test_adoption_names_each_existing_member_as_gaining(account, tmp_path):
    sb = account(rgs=RG_SHAPES["account-wide"], existing_dns=[tag(4), tag(1)])
    db, plan, out = tmp_path / "inv.db", tmp_path / "plan.json", tmp_path / "export"
    run(sb, db, "scan")
    conflict = run(sb, db, "plan", expect=1).output
    assert "--on-existing suffix" in conflict and "2 current member(s) would gain 'DNS'" in conflict
    report = run(sb, db, "plan", "--out", plan, "--on-existing", "adopt", "--format", "markdown").output
    (dns,) = [g for g in plan_body(plan)["groups"] if g["action"] == "adopt"]
    assert [m["email"] for m in dns["gains"]] == ["dee@example.com"]  # ada is in CF-DNS already: no gain
    assert "1 member(s) would gain access" in report.split("## ")[0]  # at the top, beside the losses
    assert "dee@example.com" in report and "GAINS DNS (already in adopted User Group 'dns')" in report
    run(sb, db, "apply", plan, "--yes")
    run(sb, db, "verify")
    run(sb, db, "export", "--format", "csv", "--out", out)
    with open(out / "access_grants.csv", newline="") as f:
        grants = {(r["email"], r["because_of"]) for r in csv.DictReader(f)}
    assert ("dee@example.com", "already in the adopted User Group") in grants


def test_a_member_who_joins_an_adopted_group_after_approval_makes_the_plan_stale(account, tmp_path):
    sb = account(rgs=RG_SHAPES["account-wide"], existing_dns=[tag(4)])
    db, plan = tmp_path / "inv.db", tmp_path / "plan.json"
    run(sb, db, "scan")
    run(sb, db, "plan", "--out", plan, "--on-existing", "adopt")
    client_for(sb).add_user_group_members(tag(301), [tag(3)])  # cy would gain DNS unseen
    sb.reset_calls()
    result = run(sb, db, "apply", plan, "--yes", expect=1)
    assert "joined User Group 'dns'" in result.output and writes(sb) == []


def test_verify_reports_a_member_the_plan_does_not_list():
    plan = {"groups": [{"step": "g001", "name": "DNS", "action": "adopt", "permission_group": {"id": "P", "name": "DNS"},
                        "members": [{"id": "m1", "email": "a@x"}], "existing_members": [{"id": "m4", "email": "d@x"}],
                        "virtual_groups": []}]}
    live = [{"id": "G", "name": "DNS", "policies": [policy("allow", "P", "R")]}]
    assert compare(plan, {"g001": "G"}, live, {"G": {"m1", "m4"}}, {"R"}, set()) == []
    (diff,) = compare(plan, {"g001": "G"}, live, {"G": {"m1", "m4", "m9"}}, {"R"}, set())
    assert diff["kind"] == "unplanned_member" and diff["subject"] == "m9"


def test_verify_does_not_count_a_deny_policy_as_granting():
    plan = {"groups": [{"step": "g001", "name": "DNS", "action": "create", "permission_group": {"id": "P", "name": "DNS"},
                        "members": [], "virtual_groups": []}]}
    live = [{"id": "G", "name": "DNS", "policies": [policy("deny", "P", "R")]}]
    assert [d["kind"] for d in compare(plan, {"g001": "G"}, live, {"G": set()}, {"R"}, set())] == ["policy_missing"]


def test_a_group_that_denies_the_role_is_not_adopted(account, tmp_path):
    sb = account(rgs=RG_SHAPES["account-wide"], existing_dns=[])
    group = sb.state.user_groups_by_name()["dns"]
    client_for(sb).update_user_group(group["id"], policies=[policy("deny", PG["DNS"], tag(101), "e" * 32)])
    db = tmp_path / "inv.db"
    run(sb, db, "scan")
    sb.reset_calls()
    refused = run(sb, db, "plan", "--on-existing", "adopt", expect=1).output
    assert "it denies DNS" in refused and writes(sb) == []  # its members would lose DNS, not gain it


# --- 4. unlock ------------------------------------------------------------------------------------


def test_unlock_refuses_a_live_holder_and_needs_confirmation(account, tmp_path):
    sb = account()
    db = tmp_path / "inv.db"
    inventory = open_inventory(db)
    inventory.acquire_lock("migration", "apply-live")  # held by this (live) process
    refused = run(sb, db, "unlock", "apply-live", "--yes", expect=1).output
    assert "still running" in refused and inventory.lock("apply-live")
    assert "no lock with id" in run(sb, db, "unlock", "apply-nope", "--yes", expect=1).output

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    inventory.db.execute("update locks set pid = ? where run_id = 'apply-live'", [int(gone.stdout)])
    inventory.db.conn.commit()
    assert "pass --yes" in run(sb, db, "unlock", "apply-live", expect=1).output  # no terminal, no --yes
    assert inventory.lock("apply-live")
    run(sb, db, "unlock", "apply-live", "--yes")
    assert inventory.lock("apply-live") is None
    assert "lock id apply-" not in run(sb, db, "status").output


# --- 5. one identity for names and emails -------------------------------------------------------


def test_only_matches_names_whatever_their_case(account, tmp_path):
    sb = account(rgs=RG_SHAPES["account-wide"])
    db = tmp_path / "inv.db"
    run(sb, db, "scan")
    lower = json.loads(run(sb, db, "plan", "--only", "dns", "--format", "json").output)
    upper = json.loads(run(sb, db, "plan", "--only", "DNS", "--format", "json").output)
    assert lower["steps"] == upper["steps"] and len(upper["steps"]) == 2
    assert "matches --only" in run(sb, db, "plan", "--only", "nonesuch", expect=1).output


def test_an_existing_group_differing_only_in_case_is_a_conflict(account, tmp_path):
    sb = account(rgs=RG_SHAPES["account-wide"], existing_dns=[])  # named "dns"; the target is "DNS"
    db = tmp_path / "inv.db"
    run(sb, db, "scan")
    assert "name_conflict" in run(sb, db, "plan", expect=1).output


def test_a_member_email_stored_in_mixed_case_still_matches(account, tmp_path):
    sb = account(rgs=RG_SHAPES["account-wide"])
    db, plan = tmp_path / "inv.db", tmp_path / "plan.json"
    run(sb, db, "scan")
    run(sb, db, "plan", "--out", plan)
    (dns,) = [g for g in plan_body(plan)["groups"] if g["name"] == "DNS"]
    assert tag(2) in [m["id"] for m in dns["members"]]


# --- 6. a write whose outcome is unknown is never resent in the same run ---------------------------


def test_a_failed_member_add_is_not_resent_until_the_next_run(account, tmp_path):
    sb = account(rgs=RG_SHAPES["account-wide"])
    db, plan = tmp_path / "inv.db", tmp_path / "plan.json"
    run(sb, db, "scan")
    run(sb, db, "plan", "--out", plan, "--only", "Firewall")
    sb.inject("POST", r"/members$", "5xx")
    sb.reset_calls()
    assert "outcome is unknown" in run(sb, db, "apply", plan, "--yes", expect=1).output
    assert sum(1 for c in writes(sb) if c[1].endswith("/members")) == 1
    run(sb, db, "apply", plan, "--yes")
    run(sb, db, "verify")


# --- the rehearsal replica is as locked as the account -------------------------------------------


def test_rehearsal_replica_keeps_the_idps_lock_and_group_members(account, tmp_path):
    from migrate.rehearsal import seed_from_scan

    sb = account(rgs=RG_SHAPES["account-wide"], existing_dns=[tag(4)])
    sb.state.user_groups[tag(301)]["scim_managed"] = True  # pushed by the IdP
    db = tmp_path / "inv.db"
    run(sb, db, "scan")
    inventory = open_inventory(db)
    replica = seed_from_scan(inventory.load_scan(inventory.last_scan()["id"]))
    (dns,) = replica["user_groups"]
    assert dns["scim_managed"] is True and dns["members"] == [tag(4)]
    # and the planner will not adopt it: its members are the IdP's
    assert "managed by your IdP" in run(sb, db, "plan", "--on-existing", "adopt", expect=1).output


def test_a_policy_is_written_back_exactly_as_it_was_read():
    read = {"id": "p", "access": "allow", "permission_groups": [{"id": "B", "name": "b"}, {"id": "A"}],
            "resource_groups": [{"id": "R1", "scope": WIDE}, {"id": "R0"}]}
    assert iam.write_policy(read) == {"id": "p", "access": "allow", "permission_groups": [{"id": "B"}, {"id": "A"}],
                                      "resource_groups": [{"id": "R1"}, {"id": "R0"}]}
