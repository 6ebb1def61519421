"""A scan records each account role once (the `roles` table) and names it by id in members' raw
JSON: nothing of the member as listed is lost, and inventories made before still read."""

import json
import sqlite3

import pytest
import sqlite_utils

pytest.importorskip("hypothesis", reason="hypothesis is in the `test` extra: pip install -e '.[test]'")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from migrate.cloudflare import CloudflareClient  # noqa: E402
from migrate.inventory import Inventory, dumps, member_as_listed, member_raw, migrations  # noqa: E402
from migrate.rehearsal import seed_from_scan  # noqa: E402
from migrate.scan import run_scan  # noqa: E402

JSON_SCALARS = st.none() | st.booleans() | st.integers(-3, 3) | st.sampled_from(["", "r1", "x"])
JSON = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.sampled_from(["id", "listed"]), inner, max_size=2),
    max_leaves=4,
)
ROLE_ID = st.sampled_from(["r1", "r2", 5])
# Roles as a listing might carry them: the same id with one of two bodies (equal and unequal to
# the one recorded), an id alone, shapes that read like the written forms, and not objects at all.
ROLE = st.one_of(
    st.fixed_dictionaries({"id": ROLE_ID, "permissions": st.sampled_from([{"dns": {"read": True}}, {}])}),
    st.fixed_dictionaries({"id": ROLE_ID}),
    st.fixed_dictionaries({"listed": JSON}),
    st.dictionaries(st.sampled_from(["id", "listed", "name"]), JSON, max_size=2),
    JSON_SCALARS,
)
MEMBER = (
    st.fixed_dictionaries({"id": st.just("m1"), "roles": st.lists(ROLE, max_size=4)})
    | st.fixed_dictionaries({"id": st.just("m2")}, optional={"roles": JSON})
)


@settings(max_examples=400)  # pure and quick: search wider than the profile's default
@given(st.lists(MEMBER, max_size=5))
def test_every_member_reads_back_exactly_as_listed(members):
    roles = {}
    written = [json.loads(dumps(member_raw(m, roles))) for m in members]  # as members.raw stores them
    recorded = {role_id: json.loads(dumps(role)) for role_id, role in roles.items()}  # as the roles table does
    assert [member_as_listed(raw, recorded) for raw in written] == members


def test_a_scan_records_each_role_once_and_members_name_it(sandbox, tmp_path):
    inventory = Inventory(tmp_path / "inv.db")
    client = CloudflareClient.connect(sandbox.base_url, sandbox.token, sandbox.account_id)
    scan_id, _, _ = run_scan(client, inventory)
    data = inventory.load_scan(scan_id)
    listed = {m["id"]: m for m in client.members()}
    roles = {r["id"]: r["raw"] for r in data["roles"]}
    assert roles == {role["id"]: role for m in listed.values() for role in m["roles"]}
    assert all(set(role) == {"id"} for m in data["members"] for role in m["raw"]["roles"])
    assert {m["id"]: member_as_listed(m["raw"], roles) for m in data["members"]} == listed
    replica = seed_from_scan(data)
    assert {r["id"]: r["permissions"] for r in replica["roles"]} == {role_id: role["permissions"] for role_id, role in roles.items()}


def test_an_inventory_made_before_the_roles_table_opens_and_rehearses(tmp_path):
    path = tmp_path / "old.db"
    old = sqlite_utils.Database(sqlite3.connect(path))
    migrations.apply(old, stop_before="m005_roles")
    role = {"id": "r1", "name": "Administrator", "description": "", "permissions": {"dns": {"read": True, "write": True}}}
    member = {"id": "m1", "email": "a@example.com", "status": "accepted", "roles": [role], "policies": [], "user": {"id": "u1"}}
    scan_id = old["scans"].insert({"account_id": "a" * 32, "fingerprint": "f" * 64, "counts": "{}"}).last_pk
    old["accounts"].insert({"scan_id": scan_id, "id": "a" * 32, "name": "Acme", "raw": dumps({"id": "a" * 32, "name": "Acme"})})
    old["members"].insert({"scan_id": scan_id, "id": "m1", "email": "a@example.com", "roles": '["Administrator"]', "raw": dumps(member)})
    old.conn.close()

    inventory = Inventory(path)
    data = inventory.load_scan(scan_id)
    assert data["roles"] == [] and member_as_listed(data["members"][0]["raw"], {}) == member
    assert seed_from_scan(data)["roles"] == [role]
