"""Focused unit tests of the core rules the migration rests on: journal order, reconcile, rollback
order and staleness, the stale check, the plan hash, the lock, the account id check and the
findings about pending members and the break-glass Super Administrator.

No sandbox: the executor and rollback run against a small in-memory fake of the client, so each
test says exactly which rule it holds and fails alone when that rule breaks (bench/mutants.py
plants a bug in each rule and checks that a test here, or in another focused file, catches it).
"""

import json
import time
from types import SimpleNamespace

import pytest

from migrate import iam, planfile
from migrate.cli import Settings, check_account
from migrate.errors import CloudflareError, OutcomeUnknown, UsageProblem, VgmigrateError
from migrate.executor import apply_plan, stale_reasons
from migrate.findings import analyse, member_fields
from migrate.inventory import Inventory
from migrate.rollback import rollback_run
from migrate.sources import VirtualGroup
from migrate.steps import AddMembers, CreateResourceGroup, CreateUserGroup

ACCT = "ab" * 16
WIDE = {"key": f"com.cloudflare.api.account.{ACCT}", "objects": [{"key": "*"}]}
ZONE = {"key": f"com.cloudflare.api.account.{ACCT}", "objects": [{"key": "com.cloudflare.api.account.zone." + "cd" * 16}]}
PG = "1" * 32


def policy(pg=PG, rg="$rg", access="allow"):
    return {"access": access, "permission_groups": [{"id": pg}], "resource_groups": [{"id": rg}]}


class Listing(list):
    """A listing as CloudflareClient returns it: iterable, and `start()`able."""

    def start(self):
        return self


class FakeClient:
    """Just enough of CloudflareClient for the executor and rollback, with live state in dicts."""

    def __init__(self, groups=(), rgs=()):
        self.account_id = ACCT
        self.parallel = 1
        self.http = SimpleNamespace(calls=0)
        self.last_status, self.last_ray = 200, None
        self.groups = {g["id"]: dict(g) for g in groups}
        self.members = {g["id"]: set(g.get("members", ())) for g in groups}
        self.rgs = {r["id"]: dict(r) for r in rgs}
        self.sent = []
        self.before_send = lambda method, path: None
        self.fail = {}  # (method, path) -> exception to raise instead of sending
        self.lose = set()  # (method, path): applied, then the response is lost
        self._n = 0

    @property
    def calls(self):
        return self.http.calls

    def _new_id(self):
        self._n += 1
        return f"{self._n:032x}"

    def _send(self, method, path, apply):
        self.before_send(method, path)
        self.sent.append((method, path))
        self.http.calls += 1
        if (method, path) in self.fail:
            raise self.fail[(method, path)]
        result = apply()
        if (method, path) in self.lose:
            self.lose.discard((method, path))
            raise OutcomeUnknown(method, path, ConnectionError("lost"))
        return result

    # paths
    def user_groups_path(self):
        return "/ug"

    def user_group_path(self, gid):
        return f"/ug/{gid}"

    def user_group_members_path(self, gid):
        return f"/ug/{gid}/members"

    def resource_groups_path(self):
        return "/rg"

    def resource_group_path(self, rid):
        return f"/rg/{rid}"

    # reads
    def user_groups(self, name=None):
        return Listing(dict(g) for g in self.groups.values() if name is None or iam.name_key(g["name"]) == iam.name_key(name))

    def user_group(self, gid):
        return dict(self.groups[gid])

    def resource_groups(self, name=None):
        return [dict(r) for r in self.rgs.values() if name is None or r.get("name") == name]

    def user_group_members(self, gid):
        return [{"id": m} for m in sorted(self.members.get(gid, ()))]

    # writes
    def create_user_group(self, name, policies):
        def apply():
            gid = self._new_id()
            self.groups[gid] = {"id": gid, "name": name, "policies": policies}
            self.members[gid] = set()
            return {"id": gid}
        return self._send("POST", "/ug", apply)

    def create_resource_group(self, name, key, objects):
        def apply():
            rid = self._new_id()
            self.rgs[rid] = {"id": rid, "name": name, "scope": {"key": key, "objects": [{"key": o} for o in objects]}}
            return {"id": rid}
        return self._send("POST", "/rg", apply)

    def add_user_group_members(self, gid, members):
        return self._send("POST", f"/ug/{gid}/members", lambda: self.members[gid].update(members) or [])

    def replace_user_group_members(self, gid, members):
        return self._send("PUT", f"/ug/{gid}/members", lambda: self.members.__setitem__(gid, set(members)))

    def update_user_group(self, gid, policies):
        return self._send("PUT", f"/ug/{gid}", lambda: self.groups[gid].__setitem__("policies", policies))

    def delete_user_group(self, gid):
        def apply():
            del self.groups[gid]
            self.members.pop(gid, None)
        return self._send("DELETE", f"/ug/{gid}", apply)

    def delete_resource_group(self, rid):
        return self._send("DELETE", f"/rg/{rid}", lambda: self.rgs.pop(rid))


@pytest.fixture
def inventory(tmp_path):
    inv = Inventory(tmp_path / "inv.db")
    inv.scan_id = inv.save_scan({"account_id": ACCT, "fingerprint": "f" * 64, "counts": "{}"}, {}, [])
    return inv


def make_plan(inventory, *, rg=True, adopt=None, members=("m1", "m2")):
    """One group DNS (created, or `adopt`ing an existing one) with its members, and a resource
    group created first when `rg`."""
    steps, expected = [], {"absent_names": [], "adopted": {}, "resource_group": {}}
    rg_ref = "$rg" if rg else "R0"
    if rg:
        steps.append({"id": "rg", "kind": "create_resource_group", "target": "rg", "after": [],
                      "request": {"name": "rg", "scope": WIDE}, "inverse": {"kind": "delete_resource_group"}})
        expected["resource_group"] = {"absent_scope_key": WIDE["key"]}
    else:
        expected["resource_group"] = {"id": "R0"}
    if adopt:
        prior = iam.write_policies(adopt["policies"])
        steps.append({"id": "g001", "kind": "adopt_user_group", "target": adopt["name"], "group": "g001", "after": ["rg"] if rg else [],
                      "request": {"id": adopt["id"], "policies": prior + [{"id": "9" * 32, **policy(rg=rg_ref)}]},
                      "inverse": {"kind": "restore_policies", "id": adopt["id"], "policies": prior}})
        expected["adopted"][adopt["id"]] = {"name": adopt["name"], "policies": prior, "members": sorted(adopt.get("members", ()))}
        group_ref = adopt["id"]
    else:
        steps.append({"id": "g001", "kind": "create_user_group", "target": "DNS", "group": "g001", "after": ["rg"] if rg else [],
                      "request": {"name": "DNS", "policies": [policy(rg=rg_ref)]}, "inverse": {"kind": "delete_user_group"}})
        expected["absent_names"].append("DNS")
        group_ref = "$g001"
    steps.append({"id": "g001.members", "kind": "add_members", "target": "DNS", "group": "g001", "after": ["g001"],
                  "request": {"group": group_ref, "members": list(members)}, "inverse": {"kind": "restore_members"}})
    plan = {"format": 1, "account": {"id": ACCT}, "scan": {"id": inventory.scan_id, "fingerprint": "f" * 64}, "options": {"mode": "api"},
            "conflicts": [], "expected": expected, "groups": [{"step": "g001", "name": "DNS", "existing_id": (adopt or {}).get("id"),
                                                                 "members": [{"id": m} for m in members]}], "steps": steps}
    return planfile.seal(plan)


R0 = {"id": "R0", "name": "all", "scope": WIDE}


# --- journal order and POST resend -------------------------------------------------------------


def test_every_call_is_journaled_pending_before_it_is_sent(inventory):
    client = FakeClient()
    seen = []

    def check(method, path):
        rows = list(inventory.db.query("select step, status from actions order by seq"))
        seen.append((method, path, [tuple(r.values()) for r in rows]))
        assert rows and rows[-1]["status"] == "pending", f"{method} {path} sent before its journal row"

    client.before_send = check
    assert apply_plan(client, inventory, make_plan(inventory), parallel=1).status == "done"
    (gid,) = client.groups
    assert [s[:2] for s in seen] == [("POST", "/rg"), ("POST", "/ug"), ("POST", f"/ug/{gid}/members")]
    assert all(r["status"] == "done" for r in inventory.db.query("select status from actions"))


def test_a_create_whose_response_was_lost_is_looked_up_never_resent(inventory):
    client = FakeClient(rgs=[R0])
    client.lose.add(("POST", "/ug"))  # created, but the answer never arrives
    result = apply_plan(client, inventory, make_plan(inventory, rg=False), parallel=1)
    assert result.status == "done"
    assert client.sent.count(("POST", "/ug")) == 1 and len(client.groups) == 1


def test_a_lost_create_that_did_not_happen_stays_pending_for_the_next_run(inventory):
    client = FakeClient(rgs=[R0])
    client.fail[("POST", "/ug")] = OutcomeUnknown("POST", "/ug", ConnectionError("lost"))
    plan = make_plan(inventory, rg=False)
    result = apply_plan(client, inventory, plan, parallel=1)
    assert result.status == "failed" and client.sent.count(("POST", "/ug")) == 1
    (row,) = [r for r in inventory.db.query("select step, status from actions") if r["step"] == "g001"]
    assert row["status"] == "pending"
    del client.fail[("POST", "/ug")]
    assert apply_plan(client, inventory, plan, parallel=1).status == "done"  # checked live state, then sent it
    assert client.sent.count(("POST", "/ug")) == 2 and len(client.groups) == 1


# --- reconcile ---------------------------------------------------------------------------------


def test_a_pending_create_is_found_by_name_and_policies_only():
    request = {"name": "DNS", "policies": [policy(rg="R0")]}
    same = {"id": "G", "name": "dns", "policies": [{"id": "x", **policy(rg="R0")}]}
    other = {"id": "H", "name": "DNS", "policies": [policy(pg="2" * 32, rg="R0")]}
    assert CreateUserGroup.find([other], request) is None  # someone else's group of that name
    assert CreateUserGroup.find([other, same], request)["id"] == "G"


def test_a_pending_member_add_is_done_only_when_every_member_is_there():
    client = FakeClient(groups=[{"id": "G", "name": "DNS", "policies": [], "members": ["m1"]}])
    request = {"group": "G", "members": ["m1", "m2"]}
    assert AddMembers().reconcile(client, request, {}, fresh=True) is None
    client.members["G"].add("m2")
    assert AddMembers().reconcile(client, request, {}, fresh=True) == "G"


def test_a_pending_resource_group_create_is_never_taken_for_a_zone_group():
    request = {"name": "rg", "scope": WIDE}
    zone = {"id": "Z", "name": "rg", "scope": ZONE}
    assert CreateResourceGroup._find([zone], request, ACCT) is None
    assert CreateResourceGroup._find([zone, {"id": "W", "name": "RG", "scope": WIDE}], request, ACCT)["id"] == "W"


# --- rollback: order and staleness --------------------------------------------------------------


def test_rollback_undoes_newest_first_so_the_resource_group_goes_last(inventory):
    client = FakeClient()
    apply_plan(client, inventory, make_plan(inventory), parallel=1)
    client.sent.clear()
    result = rollback_run(client, inventory)
    assert result.status == "rolled_back", result.message
    assert [m for m, _ in client.sent] == ["DELETE", "DELETE"] and client.sent[-1][1].startswith("/rg/")
    assert client.groups == {} and client.rgs == {}


def test_rollback_in_parallel_still_deletes_the_resource_group_after_every_group_using_it(inventory):
    """Groups are undone in parallel; the resource group waits for all of them, however slow a
    delete is (else it would be left in place as still used)."""
    client = FakeClient()
    plan = make_plan(inventory)
    apply_plan(client, inventory, plan, parallel=1)
    slow_delete = client.delete_user_group

    def delete_user_group(gid):
        time.sleep(0.2)
        return slow_delete(gid)

    client.delete_user_group = delete_user_group
    client.sent.clear()
    result = rollback_run(client, inventory, parallel=4)
    assert result.status == "rolled_back", result.message
    assert client.rgs == {} and client.groups == {} and client.sent[-1][1].startswith("/rg/")


def test_rollback_leaves_a_group_someone_added_members_to_unless_forced(inventory):
    client = FakeClient(rgs=[R0])
    apply_plan(client, inventory, make_plan(inventory, rg=False), parallel=1)
    (gid,) = client.groups
    client.members[gid].add("stranger")
    client.sent.clear()
    result = rollback_run(client, inventory)
    assert result.status == "partial" and "added by someone else" in result.message and client.sent == []
    assert rollback_run(client, inventory, force=True).status == "rolled_back" and client.groups == {}


def test_rollback_leaves_a_group_whose_policies_changed_unless_forced(inventory):
    client = FakeClient(rgs=[R0])
    apply_plan(client, inventory, make_plan(inventory, rg=False), parallel=1)
    (gid,) = client.groups
    client.groups[gid]["policies"] = [policy(pg="2" * 32, rg="R0")]
    result = rollback_run(client, inventory)
    assert result.status == "partial" and "policies changed" in result.message and gid in client.groups


ADOPTED = {"id": "A" * 32, "name": "dns", "policies": [policy(pg="3" * 32, rg="R0")], "members": ["old"]}


def test_rollback_of_an_adopted_group_restores_policies_and_members_exactly(inventory):
    client = FakeClient(groups=[ADOPTED], rgs=[R0])
    assert apply_plan(client, inventory, make_plan(inventory, rg=False, adopt=ADOPTED), parallel=1).status == "done"
    assert client.members[ADOPTED["id"]] == {"old", "m1", "m2"}
    assert rollback_run(client, inventory).status == "rolled_back"
    assert client.members[ADOPTED["id"]] == {"old"}
    assert iam.same_policies(client.groups[ADOPTED["id"]]["policies"], ADOPTED["policies"])


def test_rollback_leaves_an_adopted_group_whose_members_changed_since(inventory):
    client = FakeClient(groups=[ADOPTED], rgs=[R0])
    apply_plan(client, inventory, make_plan(inventory, rg=False, adopt=ADOPTED), parallel=1)
    client.members[ADOPTED["id"]].add("newcomer")
    result = rollback_run(client, inventory)
    assert result.status == "partial" and "membership" in result.message
    assert "newcomer" in client.members[ADOPTED["id"]]


def test_rollback_leaves_an_adopted_group_whose_policies_changed_since(inventory):
    client = FakeClient(groups=[ADOPTED], rgs=[R0])
    apply_plan(client, inventory, make_plan(inventory, rg=False, adopt=ADOPTED), parallel=1)
    client.groups[ADOPTED["id"]]["policies"] = [policy(pg="4" * 32, rg="R0")]
    result = rollback_run(client, inventory)
    assert result.status == "partial" and "policies" in result.message
    assert iam.same_policies(client.groups[ADOPTED["id"]]["policies"], [policy(pg="4" * 32, rg="R0")])


def test_rollback_takes_only_404_as_already_gone(inventory):
    client = FakeClient(rgs=[R0])
    apply_plan(client, inventory, make_plan(inventory, rg=False), parallel=1)
    (gid,) = client.groups
    client.fail[("DELETE", f"/ug/{gid}")] = CloudflareError(403, [{"code": 10000, "message": "Authentication error"}])
    with pytest.raises(VgmigrateError, match="rollback stopped"):
        rollback_run(client, inventory)
    assert gid in client.groups
    client.fail[("DELETE", f"/ug/{gid}")] = CloudflareError(404, [{"code": 1003, "message": "not found"}])
    assert rollback_run(client, inventory).status == "rolled_back"


# --- the stale check -----------------------------------------------------------------------------


def stale_plan(**expected):
    return {"expected": {"absent_names": [], "adopted": {}, "resource_group": {"id": "R0"}, **expected}, "groups": []}


def test_a_target_name_taken_since_in_any_case_is_stale():
    plan = stale_plan(absent_names=["DNS"])
    assert stale_reasons(plan, [{"id": "G", "name": "dns"}], [R0], {}, {}, ACCT) == ["a User Group named 'DNS' now exists"]
    ours = {"g001": {"target": "DNS", "status": "done"}}
    assert stale_reasons(plan, [{"id": "G", "name": "DNS"}], [R0], {}, ours, ACCT) == []  # our own, from the journal


def test_an_account_wide_resource_group_created_since_is_stale():
    plan = stale_plan(resource_group={"absent_scope_key": WIDE["key"]})
    assert stale_reasons(plan, [], [{"id": "Z", "scope": ZONE}], {}, {}, ACCT) == []
    assert stale_reasons(plan, [], [{"id": "W", "scope": WIDE}], {}, {}, ACCT) == ["an account-wide resource group now exists"]
    assert stale_reasons(stale_plan(), [], [], {}, {}, ACCT) == ["resource group R0 is gone"]


def test_a_member_who_joined_an_adopted_group_since_is_stale():
    before = {"name": "dns", "policies": [], "members": ["old"]}
    plan = stale_plan(adopted={"G": before})
    live = [{"id": "G", "name": "dns", "policies": []}]
    assert stale_reasons(plan, live, [R0], {"G": ["old"]}, {}, ACCT) == []
    (reason,) = stale_reasons(plan, live, [R0], {"G": ["old", "new"]}, {}, ACCT)
    assert "1 member(s) joined" in reason
    changed = [{"id": "G", "name": "dns", "policies": [policy(rg="R0")]}]
    assert "policies of User Group 'dns' changed" in stale_reasons(plan, changed, [R0], {"G": ["old"]}, {}, ACCT)[0]


# --- the plan file -----------------------------------------------------------------------------


@pytest.mark.parametrize("edit", ["steps", "account", "expected", "options"])
def test_any_edit_of_a_sealed_plan_is_refused(tmp_path, edit):
    plan = planfile.seal({"format": 1, "account": {"id": ACCT}, "steps": [{"id": "g001", "request": {"name": "DNS"}}],
                          "expected": {"absent_names": ["DNS"]}, "options": {"on_existing": "fail"}})
    path = tmp_path / "plan.json"
    planfile.write(plan, path)
    assert planfile.read(path)["plan_id"] == plan["plan_id"]
    body = json.loads(path.read_text())
    body[edit] = {"steps": [{"id": "g001", "request": {"name": "Everyone"}}], "account": {"id": "ef" * 16},
                  "expected": {"absent_names": []}, "options": {"on_existing": "adopt"}}[edit]
    path.write_text(json.dumps(body))
    with pytest.raises(VgmigrateError, match="modified after it was written"):
        planfile.read(path)


# --- settings and the lock ----------------------------------------------------------------------


@pytest.mark.parametrize("value", ["abc", "z" * 32, "a" * 31, "a" * 33, "ab" * 15 + " x", "acme corp"])
def test_a_malformed_account_id_is_a_usage_error(value):
    with pytest.raises(UsageProblem, match="not 32 hex characters"):
        check_account(Settings("x.db", value, "t", "http://x", False))


def test_a_well_formed_account_id_is_normalised():
    settings = Settings("x.db", " " + "AB" * 16 + "\n", "t", "http://x", False)
    check_account(settings)
    assert settings.account_id == ACCT


def test_the_lock_refuses_a_second_holder_while_the_first_is_alive(inventory):
    inventory.acquire_lock("migration", "apply-1")
    with pytest.raises(VgmigrateError, match=r"locked by pid \d+ .*lock id apply-1.*vgmigrate unlock apply-1"):
        inventory.acquire_lock("migration", "apply-2")
    with pytest.raises(VgmigrateError, match="lock id apply-1"):
        inventory.check_lock("migration")
    inventory.release_lock("migration")
    inventory.acquire_lock("migration", "apply-2")


# --- findings: pending members and the break-glass Super Administrator ----------------------------

SUPER = {"id": "9" * 32, "name": "Super Administrator - All Privileges", "meta": {"scopes": "com.cloudflare.api.account"}}
DNS_PG = {"id": "2" * 32, "name": "DNS", "meta": {"scopes": "com.cloudflare.api.account"}}


def member(mid, email, status="accepted", roles=()):
    return member_fields({"id": mid, "email": email, "status": status, "roles": [{"name": r} for r in roles], "policies": []}, ACCT)


def codes(members, vgs):
    return {f.code: f for f in analyse(ACCT, vgs, [SUPER, DNS_PG], members, [])[2]}


def test_only_an_accepted_super_administrator_outside_scim_is_a_break_glass():
    vgs = [VirtualGroup("v1", f"CF-{ACCT} - DNS", ("ada@x.example",))]
    accepted = [member("m1", "ada@x.example"), member("m9", "root@x.example", roles=[SUPER["name"]])]
    assert "no_super_admin_outside_scim" not in codes(accepted, vgs)
    pending = [member("m1", "ada@x.example"), member("m9", "root@x.example", "pending", roles=[SUPER["name"]])]
    assert codes(pending, vgs)["no_super_admin_outside_scim"].severity == "critical"
    # one whose Super Administrator comes from the virtual group is not outside SCIM
    in_vg = [member("m9", "root@x.example", roles=[SUPER["name"]])]
    assert "no_super_admin_outside_scim" in codes(in_vg, [VirtualGroup("v2", f"CF-{ACCT} - {SUPER['name']}", ("root@x.example",))])


def test_a_member_with_a_pending_invitation_is_flagged():
    vgs = [VirtualGroup("v1", f"CF-{ACCT} - DNS", ("ada@x.example",))]
    members = [member("m1", "ada@x.example", "pending"), member("m9", "root@x.example", roles=[SUPER["name"]])]
    assert codes(members, vgs)["pending_invitation"].subject == "ada@x.example"
    members[0] = member("m1", "ada@x.example")
    assert "pending_invitation" not in codes(members, vgs)
