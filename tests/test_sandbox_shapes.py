"""The sandbox holds every shape real accounts have, and virtual groups drive roles (issue 9).

Also the sandbox's own access oracle, `State.effective_access()`, tested on small hand-made seeds.
"""

import time

import pytest
import requests

from migrate.sandbox import Sandbox
from migrate.sandbox.seeds import demo_seed, generate_seed, tag

ACCOUNT_SCOPE = "com.cloudflare.api.account"
ZONE_SCOPE = "com.cloudflare.api.account.zone"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def _get(sb, path):
    response = requests.get(f"{sb.base_url}/accounts/{sb.account_id}{path}", headers={"Authorization": f"Bearer {sb.token}"}, timeout=5)
    assert response.status_code == 200, response.text
    return response.json()


def _patch_group(sb, group_id, *operations):
    response = requests.patch(
        f"{sb.base_url}/accounts/{sb.account_id}/scim/v2/Groups/{group_id}",
        headers={"Authorization": f"Bearer {sb.token}"},
        json={"schemas": [PATCH], "Operations": list(operations)},
        timeout=5,
    )
    assert response.status_code == 200, response.text
    return response.json()


def _member_role_names(sb, member_id):
    return {r["name"] for r in _get(sb, f"/members/{member_id}")["result"]["roles"]}


def _by_name(seed, kind):
    return {x["name"]: x for x in seed[kind]}


# ---- the demo account's shapes ------------------------------------------------------------------------


def test_demo_zone_resource_group_is_written_as_cloudflare_writes_it():
    seed = demo_seed()
    acct = seed["account"]["id"]
    zone_groups = [rg for rg in seed["resource_groups"] if any(o["key"].startswith(ZONE_SCOPE + ".") for o in rg["scope"]["objects"])]
    assert len(zone_groups) >= 3
    for rg in zone_groups:  # the account key, the zones as objects: never a zone key with "*"
        assert rg["scope"]["key"] == f"{ACCOUNT_SCOPE}.{acct}"
        assert all(o["key"].startswith(ZONE_SCOPE + ".") and o["key"] != "*" for o in rg["scope"]["objects"])
    zone = next(rg for rg in seed["resource_groups"] if rg.get("name") == "acme-corp.example zone")
    assert zone["scope"] == {"key": f"{ACCOUNT_SCOPE}.{acct}", "objects": [{"key": f"{ZONE_SCOPE}.{tag('zone:acme-corp.example')}"}]}
    assert any(len(rg["scope"]["objects"]) > 1 for rg in zone_groups)  # one group, several zones


def test_demo_has_several_account_wide_resource_groups_and_unnamed_ones(sandbox):
    acct = sandbox.account_id
    listed = _get(sandbox, "/iam/resource_groups")["result"]
    account_wide = [rg for rg in listed if rg["scope"] == {"key": f"{ACCOUNT_SCOPE}.{acct}", "objects": [{"key": "*"}]}]
    assert len(account_wide) == 2
    unnamed = [rg for rg in listed if "name" not in rg]
    assert len(unnamed) == 2 and {rg["id"] for rg in unnamed} & {rg["id"] for rg in account_wide}
    assert any(o["key"].startswith(ZONE_SCOPE) for rg in unnamed for o in rg["scope"]["objects"])
    assert None not in sandbox.state.resource_groups_by_name()
    # An unnamed group round-trips through a snapshot without gaining a name.
    again = Sandbox(seed=sandbox.state.snapshot(), rate_limit=None)
    assert sum(rg["name"] is None for rg in again.state.resource_groups.values()) == 2


def test_demo_permission_group_catalogue_is_real_sized_with_every_scope():
    seed = demo_seed()
    pgs = seed["permission_groups"]
    assert len(pgs) >= 100
    scopes = {pg["meta"]["scopes"] for pg in pgs}
    assert {ACCOUNT_SCOPE, ZONE_SCOPE} < scopes and len(scopes) >= 4  # plus resource scopes (R2 bucket, Access app)
    deprecated = [pg for pg in pgs if pg["meta"].get("deprecated")]
    assert deprecated and all(pg["meta"].get("eol_at") for pg in deprecated)


def test_demo_has_a_system_group_for_every_account_scoped_permission_group_most_empty():
    seed = demo_seed()
    acct = seed["account"]["id"]
    names = {g["displayName"] for g in seed["scim_groups"]}
    ids = {g["id"] for g in seed["scim_groups"]}
    for pg in seed["permission_groups"]:
        if pg["meta"]["scopes"] == ACCOUNT_SCOPE:
            assert f"CF-{acct} - {pg['name']}" in names and f"cloudflare-v1-{pg['id']}" in ids
        else:
            assert f"CF-{acct} - {pg['name']}" not in names  # SCIM never granted domain-scoped roles
    used = {g for u in seed["scim_users"] for g in u["groups"]}
    empty = [g for g in seed["scim_groups"] if g["id"] not in used]
    assert len(empty) > len(seed["scim_groups"]) * 3 // 4


def test_demo_members_hold_several_policies_zone_scoped_and_deny():
    seed = demo_seed()
    rgs = {rg["id"]: rg for rg in seed["resource_groups"]}

    def zone_scoped(policy):
        return any(o["key"].startswith(ZONE_SCOPE) for r in policy["resource_groups"] for o in rgs[r["id"]]["scope"]["objects"])

    several = [m for m in seed["members"] if len(m["policies"]) >= 2]
    assert len(several) >= 2
    assert any(any(zone_scoped(p) for p in m["policies"]) and any(p["access"] == "deny" for p in m["policies"]) for m in several)
    assert any(m["policies"] and not m["roles"] for m in seed["members"])  # policies only
    # In a virtual group, holding its role, and denied it on one zone.
    una = next(m for m in seed["members"] if m["email"].startswith("una."))
    assert una["roles"] and [p["access"] for p in una["policies"]] == ["deny"] and zone_scoped(una["policies"][0])


def test_demo_members_with_access_only_through_a_user_group(sandbox):
    seed = demo_seed()
    scim_tags = {u["id"] for u in seed["scim_users"]}
    grouped = {m for g in seed["user_groups"] if g["policies"] for m in g["members"]}
    only = [m for m in seed["members"] if not m["roles"] and not m["policies"] and m["id"] in grouped]
    assert len(only) >= 3
    assert any(m["user"]["id"] not in scim_tags for m in only)  # not even provisioned by SCIM
    access = sandbox.state.effective_access()
    assert all(access[m["id"]] for m in only)


def test_demo_scim_managed_group_already_carries_policies_and_stays_locked(sandbox):
    team = _by_name(demo_seed(), "user_groups")["Security Team"]
    assert team["scim_managed"] and len(team["policies"]) >= 2
    assert {p["access"] for p in team["policies"]} == {"allow", "deny"}
    listed = _get(sandbox, f"/iam/user_groups/{team['id']}")["result"]
    assert len(listed["policies"]) == len(team["policies"])
    response = requests.post(
        f"{sandbox.base_url}/accounts/{sandbox.account_id}/iam/user_groups/{team['id']}/members",
        headers={"Authorization": f"Bearer {sandbox.token}"}, json=[{"id": demo_seed()["members"][1]["id"]}], timeout=5,
    )
    assert response.status_code == 400  # locked: the IdP owns its members


def test_demo_name_conflict_group_grants_the_role_on_a_zone_only():
    seed = demo_seed()
    group = _by_name(seed, "user_groups")["Administrator Read Only"]
    rgs = {rg["id"]: rg for rg in seed["resource_groups"]}
    pg = _by_name(seed, "permission_groups")["Administrator Read Only"]["id"]
    [policy] = group["policies"]
    assert [p["id"] for p in policy["permission_groups"]] == [pg]
    assert all(o["key"] != "*" for r in policy["resource_groups"] for o in rgs[r["id"]]["scope"]["objects"])


# ---- virtual-group membership drives roles ----------------------------------------------------------


def _system_group(sandbox, display_suffix, canonical=True):
    acct = sandbox.account_id
    name = f"CF-{acct} - {display_suffix}" if canonical else display_suffix
    return next(g for g in sandbox.state.scim_groups.values() if g["displayName"] == name)


def _person(sandbox, first):
    member = next(m for m in sandbox.state.members.values() if m["email"].startswith(first + "."))
    return member["id"], member["user"]["id"]


def test_adding_to_a_system_group_grants_the_role_and_removing_revokes_it(sandbox):
    billing = _system_group(sandbox, "Billing")
    member_id, user_tag = _person(sandbox, "fay")  # a SCIM user in no system group
    assert "Billing" not in _member_role_names(sandbox, member_id)
    _patch_group(sandbox, billing["id"], {"op": "add", "path": "members", "value": [{"value": user_tag}]})
    assert "Billing" in _member_role_names(sandbox, member_id)
    listed = next(m for m in _get(sandbox, "/members?per_page=50")["result"] if m["id"] == member_id)
    assert "Billing" in {r["name"] for r in listed["roles"]}  # the list shows it as a legacy role too
    assert billing["id"] in _get(sandbox, f"/scim/v2/Users/{user_tag}")["groups"]
    _patch_group(sandbox, billing["id"], {"op": "remove", "path": f'members[value eq "{user_tag}"]'})
    assert "Billing" not in _member_role_names(sandbox, member_id)
    assert billing["id"] not in _get(sandbox, f"/scim/v2/Users/{user_tag}")["groups"]


def test_replace_and_remove_all_revoke_from_everyone_who_left(sandbox):
    readonly = _system_group(sandbox, f"cf-{sandbox.account_id.upper()} - Administrator Read Only", canonical=False)
    holders = [sandbox.state.member_ids_by_user_id[u["id"]] for u in sandbox.state.scim_users.values()
               if readonly["id"] in u["groups"] and u["id"] in sandbox.state.member_ids_by_user_id]
    assert len(holders) >= 3
    keep = holders[0]
    keep_tag = sandbox.state.members[keep]["user"]["id"]
    _patch_group(sandbox, readonly["id"], {"op": "replace", "path": "members", "value": [{"value": keep_tag}]})
    assert "Administrator Read Only" in _member_role_names(sandbox, keep)
    for member_id in holders[1:]:
        if member_id != tag("member:17"):  # 17 is also in the Workers group, which grants another role
            assert "Administrator Read Only" not in _member_role_names(sandbox, member_id)
    _patch_group(sandbox, readonly["id"], {"op": "remove", "path": "members"})
    assert "Administrator Read Only" not in _member_role_names(sandbox, keep)


def test_leaving_one_of_two_groups_granting_the_same_role_keeps_it(sandbox):
    canonical = _system_group(sandbox, "DNS")
    variant = _system_group(sandbox, f"CF-{sandbox.account_id}-DNS", canonical=False)
    assert canonical["id"] != variant["id"] and canonical["role"] == variant["role"]
    member_id, user_tag = _person(sandbox, "hana")  # in the DNS variant group
    assert variant["id"] in sandbox.state.scim_users[user_tag]["groups"]
    _patch_group(sandbox, canonical["id"], {"op": "add", "path": "members", "value": [{"value": user_tag}]})
    _patch_group(sandbox, variant["id"], {"op": "remove", "path": f'members[value eq "{user_tag}"]'})
    assert "DNS" in _member_role_names(sandbox, member_id)  # still granted by the canonical group
    _patch_group(sandbox, canonical["id"], {"op": "remove", "path": f'members[value eq "{user_tag}"]'})
    assert "DNS" not in _member_role_names(sandbox, member_id)


def test_scim_put_of_a_system_group_moves_the_role(sandbox):
    audit = _system_group(sandbox, "Audit Logs Viewer")
    a_member, a_tag = _person(sandbox, "fay")  # SCIM users in no system group
    b_member, b_tag = _person(sandbox, "gita")
    url = f"{sandbox.base_url}/accounts/{sandbox.account_id}/scim/v2/Groups/{audit['id']}"
    headers = {"Authorization": f"Bearer {sandbox.token}"}
    body = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": audit["displayName"], "members": [{"value": a_tag}]}
    assert requests.put(url, headers=headers, json=body, timeout=5).status_code == 200
    assert "Audit Logs Viewer" in _member_role_names(sandbox, a_member)
    body["members"] = [{"value": b_tag}]
    assert requests.put(url, headers=headers, json=body, timeout=5).status_code == 200
    assert "Audit Logs Viewer" not in _member_role_names(sandbox, a_member)
    assert "Audit Logs Viewer" in _member_role_names(sandbox, b_member)


def test_reprovisioning_grants_the_roles_of_the_users_system_groups(sandbox):
    member_id, user_tag = _person(sandbox, "hana")  # DNS variant group
    headers = {"Authorization": f"Bearer {sandbox.token}"}
    url = f"{sandbox.base_url}/accounts/{sandbox.account_id}/scim/v2/Users/{user_tag}"
    off = {"schemas": [PATCH], "Operations": [{"op": "replace", "path": "active", "value": False}]}
    assert requests.patch(url, headers=headers, json=off, timeout=5).status_code == 200
    assert sandbox.state.member_ids_by_user_id.get(user_tag) is None
    on = {"schemas": [PATCH], "Operations": [{"op": "replace", "path": "active", "value": True}]}
    assert requests.patch(url, headers=headers, json=on, timeout=5).status_code == 200
    new_id = sandbox.state.member_ids_by_user_id[user_tag]
    assert _member_role_names(sandbox, new_id) == {"DNS"}


def test_a_system_group_for_a_retired_role_still_grants_it_and_foreign_ones_grant_nothing(sandbox):
    http = next(g for g in sandbox.state.scim_groups.values() if g["displayName"].endswith("HTTP Applications"))
    foreign = next(g for g in sandbox.state.scim_groups.values() if sandbox.account_id not in g["displayName"].lower())
    assert foreign["role"] is None
    member_id, user_tag = _person(sandbox, "gita")  # a SCIM user in no system group
    before = _member_role_names(sandbox, member_id)
    _patch_group(sandbox, foreign["id"], {"op": "add", "path": "members", "value": [{"value": user_tag}]})
    assert _member_role_names(sandbox, member_id) == before
    _patch_group(sandbox, http["id"], {"op": "add", "path": "members", "value": [{"value": user_tag}]})
    assert _member_role_names(sandbox, member_id) == before | {"HTTP Applications"}


def test_seeds_without_a_role_on_system_groups_derive_it_from_the_backing_permission_group():
    seed = demo_seed()
    for group in seed["scim_groups"]:
        group.pop("role")
    with Sandbox(seed=seed, rate_limit=None) as sb:
        roles = {r["name"]: r["id"] for r in seed["roles"]}
        admin = _system_group(sb, "Administrator")
        assert admin["role"] == roles["Administrator"]
        workers = next(g for g in sb.state.scim_groups.values() if g["displayName"].endswith("Cloudflare Workers Admin"))
        assert workers["role"] == roles["Cloudflare Workers Admin"]  # backed by the role itself
        assert _system_group(sb, "Workers Admin")["role"] is None  # deprecated, no role of that name


# ---- effective access (the oracle) ------------------------------------------------------------------------

ACCT = "a" * 32
ZONE_A, ZONE_B = "1" * 32, "2" * 32


def _tiny_seed(**overrides):
    pg = {name: {"id": name[0] * 32, "name": name, "meta": {"label": name.lower(), "scopes": ACCOUNT_SCOPE}}
          for name in ("DNS", "Billing", "Zone Admin", "Workers Platform Admin")}
    pg["Zone Admin"]["meta"]["scopes"] = ZONE_SCOPE
    seed = {
        "account": {"id": ACCT, "name": "Tiny"},
        "permission_groups": list(pg.values()),
        "roles": [
            {"id": "d" * 31 + "0", "name": "DNS"},
            {"id": "e" * 32, "name": "Cloudflare Workers Admin", "permission_group": pg["Workers Platform Admin"]["id"]},
            {"id": "f" * 32, "name": "HTTP Applications"},
        ],
        "resource_groups": [
            {"id": "0" * 31 + "1", "scope": {"key": f"{ACCOUNT_SCOPE}.{ACCT}", "objects": [{"key": "*"}]}},
            {"id": "0" * 31 + "2", "name": "zone a", "scope": {"key": f"{ACCOUNT_SCOPE}.{ACCT}", "objects": [{"key": f"{ZONE_SCOPE}.{ZONE_A}"}]}},
            {"id": "0" * 31 + "3", "name": "both", "scope": {"key": f"{ACCOUNT_SCOPE}.{ACCT}",
                                                              "objects": [{"key": f"{ZONE_SCOPE}.{ZONE_A}"}, {"key": f"{ZONE_SCOPE}.{ZONE_B}"}]}},
            {"id": "0" * 31 + "4", "name": "elsewhere", "scope": {"key": f"{ACCOUNT_SCOPE}.{'b' * 32}", "objects": [{"key": "*"}]}},
        ],
        "members": [{"id": f"{n:032x}", "email": f"m{n}@x.example"} for n in range(1, 7)],
        "user_groups": [],
    }
    seed.update(overrides)
    return seed, {name: p["id"] for name, p in pg.items()}


def _policy(access, pg_ids, rg_ids):
    return {"access": access, "permission_groups": [{"id": i} for i in pg_ids], "resource_groups": [{"id": f"{r:032x}"} for r in rg_ids]}


def _access(seed):
    return Sandbox(seed=seed, rate_limit=None).state.effective_access()


def test_roles_count_as_their_permission_group_account_wide():
    seed, pg = _tiny_seed()
    seed["members"][0]["roles"] = ["d" * 31 + "0", "e" * 32, "f" * 32]
    access = _access(seed)
    assert access[f"{1:032x}"] == {(pg["DNS"], "account"), (pg["Workers Platform Admin"], "account"), ("role:" + "f" * 32, "account")}
    assert access[f"{2:032x}"] == frozenset()


def test_policies_union_of_member_and_user_groups_with_zone_scopes():
    seed, pg = _tiny_seed()
    m1, m2 = f"{1:032x}", f"{2:032x}"
    seed["members"][0]["policies"] = [_policy("allow", [pg["Zone Admin"]], [2])]
    seed["user_groups"] = [
        {"id": "c" * 32, "name": "Ops", "members": [m1, m2], "policies": [_policy("allow", [pg["DNS"], pg["Billing"]], [1]), _policy("allow", [pg["Zone Admin"]], [3])]},
    ]
    access = _access(seed)
    assert access[m1] == {(pg["DNS"], "account"), (pg["Billing"], "account"), (pg["Zone Admin"], f"zone:{ZONE_A}"), (pg["Zone Admin"], f"zone:{ZONE_B}")}
    assert access[m2] == access[m1]  # the member's own zone-A policy adds nothing the group does not give


def test_deny_wins_over_every_allow():
    seed, pg = _tiny_seed()
    m1, m2, m3 = (f"{n:032x}" for n in (1, 2, 3))
    seed["members"][0].update(roles=["d" * 31 + "0"], policies=[_policy("deny", [pg["DNS"]], [1])])  # denied everywhere
    seed["members"][1]["policies"] = [_policy("allow", [pg["Zone Admin"]], [3]), _policy("deny", [pg["Zone Admin"]], [2])]
    seed["members"][2]["roles"] = ["d" * 31 + "0"]
    seed["user_groups"] = [{"id": "c" * 32, "name": "No DNS on A", "members": [m3], "policies": [_policy("deny", [pg["DNS"]], [2])]}]
    access = _access(seed)
    assert access[m1] == frozenset()
    assert access[m2] == {(pg["Zone Admin"], f"zone:{ZONE_B}")}
    assert access[m3] == {(pg["DNS"], f"account-except:zone:{ZONE_A}")}


def test_another_accounts_scope_grants_nothing_and_the_oracle_is_pure():
    seed, pg = _tiny_seed()
    seed["members"][0]["policies"] = [_policy("allow", [pg["Billing"]], [4])]
    sb = Sandbox(seed=seed, rate_limit=None)
    before = sb.state.snapshot()
    assert sb.state.effective_access()[f"{1:032x}"] == frozenset()
    assert sb.state.effective_access([f"{1:032x}"]) == {f"{1:032x}": frozenset()}
    assert sb.state.snapshot() == before


def test_demo_effective_access_of_the_interesting_people(sandbox):
    seed = demo_seed()
    pg = {p["name"]: p["id"] for p in seed["permission_groups"]}
    zone, shop = f"zone:{tag('zone:acme-corp.example')}", f"zone:{tag('zone:shop.acme-corp.example')}"
    access = sandbox.state.effective_access()
    assert access[tag("member:45")] == {(pg["DNS"], f"account-except:{shop}")}
    assert access[tag("member:40")] == {(pg["Analytics"], "account"), (pg["Audit Logs Viewer"], "account"), (pg["Domain Administrator"], zone)}
    assert (pg["Billing"], "account") not in access[tag("member:41")]  # allowed once, denied by another policy
    # A SCIM group's deny reaches its members: Security Team denies Billing.
    assert all((pg["Billing"], "account") not in access[tag(f"member:{i}")] for i in (28, 31, 32, 46))
    assert (pg["Firewall"], "account") in access[tag("member:46")]
    assert (pg["Workers Platform Admin"], "account") in access[tag("member:18")]  # the renamed legacy role
    assert access[tag("member:29")] >= {(pg["Analytics"], "account"), (pg["Administrator Read Only"], zone)}


def test_granting_through_scim_shows_in_effective_access(sandbox):
    billing = _system_group(sandbox, "Billing")
    member_id, user_tag = _person(sandbox, "hana")
    pg = sandbox.state.permission_group_ids_by_name["Billing"]
    assert (pg, "account") not in sandbox.state.effective_access([member_id])[member_id]
    _patch_group(sandbox, billing["id"], {"op": "add", "path": "members", "value": [{"value": user_tag}]})
    assert (pg, "account") in sandbox.state.effective_access([member_id])[member_id]


# ---- the generated account ------------------------------------------------------------------------------


def test_generated_seed_has_the_same_variety_deterministically():
    seed = generate_seed(200, 3000, random_seed=5)
    assert seed == generate_seed(200, 3000, random_seed=5)
    other = generate_seed(200, 3000, random_seed=6)
    assert seed["user_groups"] != other["user_groups"] and seed["resource_groups"] != other["resource_groups"]
    acct = seed["account"]["id"]
    account_wide = [rg for rg in seed["resource_groups"] if rg["scope"] == {"key": f"{ACCOUNT_SCOPE}.{acct}", "objects": [{"key": "*"}]}]
    assert len(account_wide) == 2 and {rg.get("name") for rg in account_wide} == {None, f"{ACCOUNT_SCOPE}.{acct}"}
    zones = [rg for rg in seed["resource_groups"] if rg["scope"]["objects"][0]["key"].startswith(ZONE_SCOPE + ".")]
    assert zones and any("name" not in rg for rg in zones) and all(rg["scope"]["key"] == f"{ACCOUNT_SCOPE}.{acct}" for rg in zones)
    pg_names = {pg["name"] for pg in seed["permission_groups"]}
    groups = seed["user_groups"]
    conflicts = [g for g in groups if g["name"] in pg_names]
    assert len(conflicts) == 2 and {g["scim_managed"] for g in conflicts} == {True, False}
    assert all(g["policies"] for g in groups) and any(g["scim_managed"] for g in groups if g not in conflicts)
    populated = {g for u in seed["scim_users"] for g in u["groups"]}
    vg_of = {g["displayName"].split(" - ", 1)[1]: g["id"] for g in seed["scim_groups"]}
    assert all(vg_of[g["name"]] in populated for g in conflicts)  # the conflicts are with real targets
    members = seed["members"]
    assert any(p["access"] == "deny" for m in members for p in m["policies"])
    assert sum(len(m["policies"]) >= 2 for m in members) > 10
    in_groups = {m for g in groups for m in g["members"]}
    scim_tags = {u["id"] for u in seed["scim_users"]}
    only = [m for m in members if not m["roles"] and not m["policies"] and m["user"]["id"] not in scim_tags and m["id"] in in_groups]
    assert len(only) > 10
    assert any(pg["meta"].get("eol_at") for pg in seed["permission_groups"])
    Sandbox(seed=seed, rate_limit=None)  # loads


def test_generated_big_account_stays_fast():
    started = time.perf_counter()
    seed = generate_seed(2000, 50000)
    assert time.perf_counter() - started < 3
    started = time.perf_counter()
    sb = Sandbox(seed=seed, rate_limit=None)
    sb.state.effective_access()
    assert time.perf_counter() - started < 5


@pytest.mark.parametrize("random_seed", [0, 1])
def test_generated_system_groups_grant_their_roles(random_seed):
    seed = generate_seed(30, 200, random_seed=random_seed)
    roles = {r["id"] for r in seed["roles"]}
    granting = [g for g in seed["scim_groups"] if g["role"]]
    assert len(granting) == 30 and all(g["role"] in roles for g in granting)
