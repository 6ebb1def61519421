"""The sandbox's "before end of life" mode (a pushed CF- group becomes a virtual group, as before
2025-12-02; used to seed an account the way an IdP built it) and its SCIM request recording."""

import pytest
import requests

from migrate.sandbox import Sandbox
from migrate.sandbox.seeds import KNOWN_ROLE_IDS, unprovisioned_seed

SUPER = "Super Administrator - All Privileges"


@pytest.fixture
def unprovisioned():
    with Sandbox(seed=unprovisioned_seed(), rate_limit=None) as sb:
        yield sb


def scim(sb, method, path, body=None, **params):
    url = f"{sb.base_url}/accounts/{sb.account_id}/scim/v2{path}"
    return requests.request(method, url, json=body, params=params, timeout=5, headers={"Authorization": f"Bearer {sb.token}"})


def push_user(sb, email):
    body = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": email, "active": True,
            "emails": [{"value": email, "primary": True}]}
    response = scim(sb, "POST", "/Users", body)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def group_body(name, members=()):
    return {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": name,
            "members": [{"value": m} for m in members]}


def add_members(ids):
    return {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "add", "path": "members", "value": [{"value": i} for i in ids]}]}


def roles_of(sb, email):
    with sb.state.lock:
        member = sb.state.members[sb.state.member_ids_by_email[email.casefold()]]
        return {sb.state.roles[r]["name"] for r in member["roles"]}


def test_unprovisioned_seed_has_no_idp_traces_and_keeps_the_break_glass_admin(unprovisioned):
    state = unprovisioned.state
    assert not state.scim_groups and not state.scim_users and not state.user_groups
    holders = [m["email"] for m in state.members.values() if KNOWN_ROLE_IDS[SUPER] in m["roles"]]
    assert holders == ["ava.abbott@acme-corp.example"]


def test_a_cf_group_push_is_refused_by_default(unprovisioned):
    name = f"CF-{unprovisioned.account_id} - Administrator"
    response = scim(unprovisioned, "POST", "/Groups", group_body(name))
    assert response.status_code == 400 and "reserved prefix" in response.json()["detail"]
    assert not unprovisioned.state.scim_groups


@pytest.mark.parametrize("via", ["patch", "inline"])
def test_before_end_of_life_a_pushed_cf_group_is_a_virtual_group_granting_its_role(unprovisioned, via):
    sb = unprovisioned
    sb.state.before_end_of_life = True
    emails = ["ben.brandt@acme-corp.example", "chloe.castillo@acme-corp.example"]
    ids = [push_user(sb, e) for e in emails]
    assert all(roles_of(sb, e) == set() for e in emails)
    name = f"CF-{sb.account_id} - Administrator"
    created = scim(sb, "POST", "/Groups", group_body(name, ids if via == "inline" else ()))
    assert created.status_code == 201, created.text
    group_id = created.json()["id"]
    assert group_id.startswith("cloudflare-v1-") and created.json()["displayName"] == name
    if via == "patch":
        assert scim(sb, "PATCH", f"/Groups/{group_id}", add_members(ids)).status_code == 200
    assert all(roles_of(sb, e) == {"Administrator"} for e in emails)
    # As Cloudflare's system groups do, it lists no members, and it keeps working after end of life.
    sb.state.before_end_of_life = False
    assert "members" not in scim(sb, "GET", f"/Groups/{group_id}").json()
    remove = {"Operations": [{"op": "remove", "path": f'members[value eq "{ids[0]}"]'}]}
    assert scim(sb, "PATCH", f"/Groups/{group_id}", remove).status_code == 200
    assert roles_of(sb, emails[0]) == set() and roles_of(sb, emails[1]) == {"Administrator"}
    assert scim(sb, "POST", "/Groups", group_body(f"CF-{sb.account_id} - DNS")).status_code == 400


def test_before_end_of_life_the_same_name_twice_is_a_409_and_bad_names_are_400(unprovisioned):
    sb = unprovisioned
    sb.state.before_end_of_life = True
    name = f"CF-{sb.account_id} - {SUPER}"
    assert scim(sb, "POST", "/Groups", group_body(name)).status_code == 201
    again = scim(sb, "POST", "/Groups", group_body(name))
    assert again.status_code == 409 and again.json()["scimType"] == "uniqueness"
    assert scim(sb, "POST", "/Groups", group_body(f"CF-{'0' * 32} - DNS")).status_code == 400  # another account
    assert scim(sb, "POST", "/Groups", group_body(f"CF-{sb.account_id} - No Such Role")).status_code == 400
    assert len(sb.state.scim_groups) == 1


def test_scim_requests_are_recorded_with_bodies_only_when_asked(unprovisioned):
    sb = unprovisioned
    push_user(sb, "ben.brandt@acme-corp.example")
    assert sb.scim_requests == []
    sb.record_scim = True
    user_id = push_user(sb, "chloe.castillo@acme-corp.example")
    scim(sb, "GET", "/Users", filter='userName eq "x@y.example"')
    scim(sb, "DELETE", f"/Users/{user_id}")
    api = requests.get(f"{sb.base_url}/accounts/{sb.account_id}/members", headers={"Authorization": f"Bearer {sb.token}"}, timeout=5)
    assert api.status_code == 200
    seen = [(r["method"], r["path"], r["status"]) for r in sb.scim_requests]
    assert seen == [("POST", "/Users", 201), ("GET", "/Users", 200), ("DELETE", f"/Users/{user_id}", 400)]
    first, second = sb.scim_requests[:2]
    assert first["body"]["userName"] == "chloe.castillo@acme-corp.example" and second["body"] is None
    assert "filter=" in second["query"] and first["at"] <= second["at"]
    sb.reset_calls()
    assert sb.scim_requests == []
