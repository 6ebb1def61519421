"""The pure parts of the engine: planner, plan file, staleness, verify comparison."""

import json

import pytest

from migrate import planfile
from migrate.errors import VgmigrateError
from migrate.executor import resolve_refs, stale_reasons
from migrate.iam import is_account_wide, same_policies
from migrate.planner import PlanOptions, build_plan
from migrate.verify import compare

ACCT = "a" * 32
PG = {
    "admin": {"id": "1" * 32, "name": "Administrator", "meta": {"scopes": "com.cloudflare.api.account"}},
    "dns": {"id": "2" * 32, "name": "DNS", "meta": {"scopes": "com.cloudflare.api.account"}},
}
ACCOUNT_RG = {"id": "f" * 32, "name": "everything", "scope": {"key": f"com.cloudflare.api.account.{ACCT}", "objects": [{"key": "*"}]}}


def vg(vid, role, account=ACCT):
    return {"id": vid, "name": f"CF-{account} - {role}", "account_id": account, "role": role, "resolution": "resolved"}


def link(vid, email, member_id):
    return {"virtual_group_id": vid, "email": email, "member_id": member_id, "member_status": "accepted" if member_id else None}


def scan_data(virtual_groups, links, user_groups=(), resource_groups=()):
    return {
        "scan": {"id": 1, "account_id": ACCT, "account_name": "Test", "source": "cloudflare", "finished_at": "t", "fingerprint": "fp"},
        "permission_groups": [{"id": pg["id"], "name": pg["name"], "raw": pg} for pg in PG.values()],
        "members": [{"id": m, "email": e} for _, e, m in {(x["virtual_group_id"], x["email"], x["member_id"]) for x in links} if m],
        "virtual_groups": virtual_groups,
        "virtual_group_members": links,
        "user_groups": [{"id": g["id"], "name": g["name"], "policies": g.get("policies", []), "raw": g} for g in user_groups],
        "resource_groups": [{**rg, "account_wide": int(is_account_wide(rg, ACCT)), "raw": rg} for rg in resource_groups],
        "findings": [],
    }


BASIC = scan_data(
    [vg("v1", "Administrator"), vg("v2", "DNS"), vg("v3", "HTTP Applications"), vg("v4", "Administrator", account="b" * 32)],
    [link("v1", "ada@x.example", "m1"), link("v1", "bob@x.example", "m2"), link("v2", "bob@x.example", "m2"), link("v2", "ghost@x.example", None)],
)


def kinds(plan):
    return [(s["id"], s["kind"]) for s in plan["steps"]]


def test_creates_one_group_per_permission_group_with_policy_then_members():
    plan = build_plan(BASIC, PlanOptions())
    assert kinds(plan) == [("rg", "create_resource_group"), ("g001", "create_user_group"), ("g001.members", "add_members"),
                           ("g002", "create_user_group"), ("g002.members", "add_members")]
    create = plan["steps"][1]
    assert create["request"] == {"name": "Administrator", "policies": [{"access": "allow", "permission_groups": [{"id": PG["admin"]["id"]}], "resource_groups": [{"id": "$rg"}]}]}
    assert plan["steps"][2]["request"] == {"group": "$g001", "members": ["m1", "m2"]}
    assert plan["steps"][4]["request"]["members"] == ["m2"]  # the address with no account membership is left out
    assert [s["virtual_group"] for s in plan["skipped"]] == [BASIC["virtual_groups"][2]["name"], BASIC["virtual_groups"][3]["name"]]
    assert plan["expected"]["absent_names"] == ["Administrator", "DNS"]
    assert plan["expected"]["resource_group"] == {"absent_scope_key": f"com.cloudflare.api.account.{ACCT}"}


def test_existing_account_wide_resource_group_is_reused():
    data = {**BASIC, "resource_groups": [{**ACCOUNT_RG, "account_wide": 1, "raw": ACCOUNT_RG}]}
    plan = build_plan(data, PlanOptions())
    assert "rg" not in dict(kinds(plan))
    assert plan["steps"][0]["request"]["policies"][0]["resource_groups"] == [{"id": ACCOUNT_RG["id"]}]
    assert all(s["after"] in ([], ["g001"], ["g002"]) for s in plan["steps"])


def test_two_virtual_groups_for_one_permission_group_are_merged():
    data = scan_data([vg("v1", "DNS"), vg("v2", "dns")], [link("v1", "a@x", "m1"), link("v2", "b@x", "m2")])
    plan = build_plan(data, PlanOptions())
    assert [g["name"] for g in plan["groups"]] == ["DNS"]
    assert [m["id"] for m in plan["groups"][0]["members"]] == ["m1", "m2"]


def test_mapping_resolves_what_the_scan_could_not():
    data = {**BASIC, "virtual_group_members": BASIC["virtual_group_members"] + [link("v3", "cy@x.example", "m3")]}
    plan = build_plan(data, PlanOptions(mapping={"HTTP Applications": "DNS"}))
    dns = next(g for g in plan["groups"] if g["name"] == "DNS")
    assert {v["resolution"] for v in dns["virtual_groups"]} == {"exact", "mapping"}


@pytest.mark.parametrize("template, message", [("CF-{role}", "reserves"), ("{nope}", "must use only"), ("Team", "must use only"), ("x {vg_role", "malformed")])
def test_bad_templates_are_refused(template, message):
    with pytest.raises(VgmigrateError, match=message):
        build_plan(BASIC, PlanOptions(name_template=template))


def test_template_that_merges_different_roles_is_refused():
    with pytest.raises(VgmigrateError, match="different roles"):
        build_plan(BASIC, PlanOptions(name_template="Team {account}"))


# An existing "DNS" group granting DNS on one zone only: adoptable (its policies name no other role).
TAKEN = {**BASIC, "user_groups": [{"id": "u1", "name": "DNS", "policies": [{"id": "p1", "access": "allow", "permission_groups": [{"id": PG["dns"]["id"]}], "resource_groups": [{"id": "r9"}]}], "raw": {"modified_on": "2025-01-01"}}]}


def test_on_existing_fail_reports_a_conflict_and_no_steps_for_it():
    plan = build_plan(TAKEN, PlanOptions())
    assert plan["conflicts"] == [{"name": "DNS", "existing_id": "u1", "members": 0, "scim_managed": False, "policies": []}]
    assert all(s["target"] != "DNS" for s in plan["steps"])
    assert any(f["code"] == "name_conflict" for f in plan["findings"])


def test_on_existing_adopt_keeps_prior_policies_and_records_them_for_rollback():
    plan = build_plan(TAKEN, PlanOptions(on_existing="adopt"))
    adopt = next(s for s in plan["steps"] if s["kind"] == "adopt_user_group")
    prior = [{"id": "p1", "access": "allow", "permission_groups": [{"id": PG["dns"]["id"]}], "resource_groups": [{"id": "r9"}]}]
    assert adopt["request"]["policies"][0] == prior[0] and len(adopt["request"]["policies"]) == 2
    assert adopt["inverse"] == {"kind": "restore_policies", "id": "u1", "policies": prior}
    assert plan["expected"]["adopted"] == {"u1": {"name": "DNS", "policies": prior, "members": []}}


def test_on_existing_suffix_picks_a_free_name():
    plan = build_plan(TAKEN, PlanOptions(on_existing="suffix"))
    assert "DNS (2)" in plan["expected"]["absent_names"]


def test_groups_this_tool_made_need_only_missing_members():
    own = {"u1": {"name": "DNS", "members": {"m2"}}, "u2": {"name": "Administrator", "members": {"m1"}}}
    plan = build_plan(BASIC, PlanOptions(), own_groups=own)
    assert kinds(plan) == [("g001.members", "add_members")]
    assert plan["steps"][0]["request"] == {"group": "u2", "members": ["m2"]}
    assert build_plan(BASIC, PlanOptions(), own_groups={"u1": {"name": "DNS", "members": {"m2"}}, "u2": {"name": "Administrator", "members": {"m1", "m2"}}})["steps"] == []


def test_only_limits_the_plan():
    plan = build_plan(BASIC, PlanOptions(only=("DNS",)))
    assert [g["name"] for g in plan["groups"]] == ["DNS"]


def test_access_picture_shows_who_loses_what():
    rows = {r["email"]: r for r in build_plan(BASIC, PlanOptions())["access"]}
    assert rows["bob@x.example"]["lost"] == []
    # no account membership: never had the role in Cloudflare, so not a loss; it cannot be carried over
    assert rows["ghost@x.example"]["lost"] == [] and rows["ghost@x.example"]["cannot_add"] == ["DNS"]


def test_plan_file_round_trip_and_tamper_detection(tmp_path):
    sealed = planfile.seal(build_plan(BASIC, PlanOptions()))
    path = tmp_path / "plan.json"
    planfile.write(sealed, path)
    assert planfile.read(path) == sealed
    path.write_text(json.dumps(sealed))  # reformatting is not tampering
    assert planfile.read(path)["plan_id"] == sealed["plan_id"]
    edited = json.loads(path.read_text())
    edited["steps"][2]["request"]["members"].append("m9")
    path.write_text(json.dumps(edited))
    with pytest.raises(VgmigrateError, match="modified after it was written"):
        planfile.read(path)


def test_stale_reasons():
    plan = build_plan(TAKEN, PlanOptions(on_existing="adopt"))
    prior = TAKEN["user_groups"][0]["policies"]
    assert stale_reasons(plan, [{"id": "u1", "name": "DNS", "policies": prior}], [], {}, {}, ACCT) == []
    moved = stale_reasons(plan, [{"id": "u1", "name": "DNS", "policies": []}, {"id": "x", "name": "administrator"}], [ACCOUNT_RG], {"u1": ["m7"]}, {}, ACCT)
    assert len(moved) == 4
    assert stale_reasons(plan, [], [], {}, {}, ACCT) == ["User Group 'DNS' (u1) is gone"]
    # Objects the run's own journal accounts for are not someone else's change.
    ours = {"g001": {"target": "Administrator", "status": "done"}, "rg": {"target": f"com.cloudflare.api.account.{ACCT}", "status": "pending"}}
    assert stale_reasons(plan, [{"id": "u1", "name": "DNS", "policies": prior}, {"id": "x", "name": "Administrator"}], [ACCOUNT_RG], {}, ours, ACCT) == []


def test_refs_and_policy_comparison():
    assert resolve_refs({"group": "$g1", "members": ["m1"], "rg": [{"id": "$rg"}]}, {"g1": "G", "rg": "R"}) == {"group": "G", "members": ["m1"], "rg": [{"id": "R"}]}
    live = [{"id": "p", "access": "allow", "permission_groups": [{"id": "1", "name": "x"}], "resource_groups": [{"id": "r", "scope": {}}]}]
    assert same_policies(live, [{"access": "allow", "permission_groups": [{"id": "1"}], "resource_groups": [{"id": "r"}]}])
    assert not same_policies(live, [])


def test_verify_compare_finds_every_kind_of_difference():
    plan = build_plan(BASIC, PlanOptions())
    policy = lambda pg: [{"access": "allow", "permission_groups": [{"id": pg}], "resource_groups": [{"id": "R"}]}]  # noqa: E731
    live = [{"id": "G1", "name": "Administrator", "policies": policy(PG["admin"]["id"])}, {"id": "G2", "name": "DNS renamed", "policies": policy(PG["dns"]["id"])}]
    memberships = {("m1", "ada@x.example", PG["admin"]["id"], "Administrator"), ("m2", "bob@x.example", PG["admin"]["id"], "Administrator"), ("m2", "bob@x.example", PG["dns"]["id"], "DNS")}
    clean = compare(plan, {"g001": "G1", "g002": "G2"}, live, {"G1": {"m1", "m2"}, "G2": {"m2"}}, {"R"}, memberships)
    assert [d["kind"] for d in clean] == ["name_changed"]
    diffs = compare(plan, {"g001": "G1", "g002": None}, live, {"G1": {"m1"}}, {"R"}, memberships)
    assert sorted(d["kind"] for d in diffs) == ["access_not_granted", "access_not_granted", "group_missing", "member_missing"]
    wrong_scope = compare(plan, {"g001": "G1", "g002": "G2"}, live, {"G1": {"m1", "m2"}, "G2": {"m2"}}, {"other"}, memberships)
    assert {d["kind"] for d in wrong_scope} == {"policy_missing", "name_changed", "access_not_granted"}


@pytest.mark.parametrize("policy, why", [
    ({"access": "deny", "permission_groups": [{"id": PG["dns"]["id"]}], "resource_groups": [{"id": "r9"}]}, "it denies DNS"),
    ({"access": "deny", "permission_groups": [{"id": PG["admin"]["id"]}], "resource_groups": [{"id": "r9"}]}, "it denies Administrator"),
    ({"access": "allow", "permission_groups": [{"id": PG["admin"]["id"]}], "resource_groups": [{"id": "r9"}]}, "it also grants Administrator"),
])
def test_a_group_whose_policies_would_bind_the_members_to_more_is_never_adopted(policy, why):
    data = {**BASIC, "user_groups": [{"id": "u1", "name": "dns", "policies": [{"id": "p1", **policy}], "raw": {}}]}
    plan = build_plan(data, PlanOptions(on_existing="adopt"))
    assert [c["name"] for c in plan["conflicts"]] == ["DNS"] and not any(s["kind"] == "adopt_user_group" for s in plan["steps"])
    (finding,) = [f for f in plan["findings"] if f["code"] == "name_conflict"]
    assert why in finding["message"] and "suffix" in finding["action"] and "adopt" not in finding["action"]
