"""Focused tests that pin the IdP path's rules: each fails if its rule is planted wrong."""

import pytest

from migrate.cutover import supers_outside_scim
from migrate.executor import StepFailed
from migrate.idp.check import assess
from migrate.steps import CreateIdpGroup, DeleteIdpGroup

from test_idp_check import healthy

ACCT = "a" * 32
OTHER = "b" * 32
SA = "Super Administrator - All Privileges"


class FakeIdp:
    """The few Authentik reads these rules make, from a dict of groups by name."""

    name = "Authentik"

    def __init__(self, *groups):
        self.by_name = {g["name"]: g for g in groups}
        self.by_pk = {g["pk"]: g for g in groups}

    def group_by_name(self, name, include_users=True):
        return self.by_name.get(name)

    def group(self, uuid, include_users=True):
        return self.by_pk.get(uuid)


def create_request(run="apply-1"):
    return {"name": "Cloudflare - DNS", "users": [1], "attributes": {"vgmigrate": {"plan": "p1", "step": "g001", "run": run}}}


@pytest.mark.parametrize("attributes", [{}, {"vgmigrate": {"plan": "p1", "step": "g001", "run": "apply-2"}}, {"owner": "someone"}])
def test_a_same_named_authentik_group_without_this_runs_marker_is_not_ours(attributes):
    """Matching by name alone would take someone's group (or another run's) as done, and rollback
    would delete it."""
    theirs = {"pk": "u-1", "name": "Cloudflare - DNS", "users": [1], "attributes": attributes}
    assert CreateIdpGroup.find(FakeIdp(theirs), create_request()) is None


def test_the_group_this_run_made_is_found_by_its_marker():
    ours = {"pk": "u-1", "name": "Cloudflare - DNS", "users": [1], "attributes": create_request()["attributes"]}
    assert CreateIdpGroup.find(FakeIdp(ours), create_request())["pk"] == "u-1"


class FakeApply:
    def __init__(self, idp):
        self.client = type("Client", (), {"idp": idp})()


def test_a_cf_group_that_got_a_member_back_before_its_delete_is_not_deleted():
    """Between the cutover's remove and its delete someone put a member back: deleting now would
    take that member's role away."""
    group = {"pk": "u-cf", "name": f"CF-{ACCT} - DNS", "users": [7], "children": [], "roles": []}
    step = {"id": "c001.delete", "target": group["name"], "kind": "delete_idp_group"}
    with pytest.raises(StepFailed, match="1 member"):
        DeleteIdpGroup().prepare(FakeApply(FakeIdp(group)), step, {"group": "u-cf", "provider": 1}, None)


@pytest.mark.parametrize("status", ["rejected", "error"])
def test_a_rejected_or_failed_last_sync_is_an_error(status):
    facts = healthy(sync_status={"is_running": False, "last_successful_sync": None, "last_sync_status": status})
    found = [f for f in assess(facts) if f.code == "last_sync_failed"]
    assert found and found[0].severity == "error"


def member(email, roles=(), status="accepted"):
    """An account member as Cloudflare's API (and the sandbox) returns it: roles as objects."""
    return {"id": email, "email": email, "status": status, "user": {"email": email}, "policies": [],
            "roles": [{"id": f"r-{name}", "name": name} for name in roles]}


def cf_group(account, role, *emails):
    return {"pk": f"{account}-{role}", "name": f"CF-{account} - {role}", "users_obj": [{"pk": i, "email": e} for i, e in enumerate(emails)]}


def test_a_super_administrator_only_through_a_cf_group_is_not_a_break_glass():
    """Cloudflare cannot tell a CF- group's grant from a direct one: whoever is in this account's
    Super Administrator CF- group depends on SCIM and is not counted."""
    members = [member("ada@example.com", [SA])]
    assert supers_outside_scim(members, [cf_group(ACCT, SA, "ada@example.com")], ACCT) == []
    assert supers_outside_scim(members, [], ACCT) == ["ada@example.com"]


def test_another_accounts_super_administrator_cf_group_does_not_make_someone_depend_on_scim():
    """A CF- group of another account grants nothing here, as the scan counts it: its member who
    holds the role directly in this account is a break glass."""
    members = [member("root@example.com", [SA]), member("ada@example.com", [SA])]
    groups = [cf_group(OTHER, SA, "root@example.com"), cf_group(ACCT, SA, "ada@example.com")]
    assert supers_outside_scim(members, groups, ACCT) == ["root@example.com"]


def test_a_pending_super_administrator_is_no_break_glass():
    assert supers_outside_scim([member("root@example.com", [SA], status="pending")], [], ACCT) == []
