"""Held access counted as Cloudflare counts it (iam.held_access), and what is built on it: the
`role_not_held` finding, the break-glass check, and the scan's effective-access rows and view.

The property test compares a scan with the sandbox's own oracle, `State.effective_access()`,
over generated accounts; the others pin single cases an approver would be misled by.
"""

import tempfile
from pathlib import Path

import pytest

pytest.importorskip("hypothesis", reason="hypothesis is in the `test` extra: pip install -e '.[test]'")

from hypothesis import given  # noqa: E402

from account_strategies import accounts  # noqa: E402
from migrate import iam  # noqa: E402
from migrate.cloudflare import CloudflareClient  # noqa: E402
from migrate.findings import analyse, member_fields  # noqa: E402
from migrate.inventory import Inventory  # noqa: E402
from migrate.sandbox import Sandbox  # noqa: E402
from migrate.sandbox.state import ACCOUNT  # noqa: E402
from migrate.scan import run_scan  # noqa: E402
from migrate.sources import VirtualGroup  # noqa: E402

ACCT = "ab" * 16
WIDE = {"key": f"com.cloudflare.api.account.{ACCT}", "objects": [{"key": "*"}]}
ZONE = {"key": f"com.cloudflare.api.account.{ACCT}", "objects": [{"key": "com.cloudflare.api.account.zone." + "c1" * 16}]}


def pg(n, name):
    return {"id": f"{n:032x}", "name": name, "meta": {"scopes": "com.cloudflare.api.account"}}


DNS, SUPER, WORKERS, SSL = pg(1, "DNS"), pg(2, "Super Administrator - All Privileges"), pg(3, "Workers Platform Admin"), \
    pg(4, "SSL/TLS, Caching, Performance, Page Rules, and Customization")
PGS = [DNS, SUPER, WORKERS, SSL]


def policy(access, permission_group, scope=WIDE):
    return {"access": access, "permission_groups": [{"id": permission_group["id"], "name": permission_group["name"]}],
            "resource_groups": [{"id": "rg-" + scope["objects"][0]["key"][-4:], "scope": scope}]}


def member(n, roles=(), policies=(), status="accepted"):
    return member_fields({"id": f"m{n}", "email": f"u{n}@x.example", "status": status,
                          "roles": [{"name": r} for r in roles], "policies": list(policies)}, ACCT)


ROOT = member(9, roles=[SUPER["name"]])  # the break-glass Super Administrator


def analysed(members, vgs, groups=(), mapping=None):
    """(findings by code -> subjects, virtual_group_members rows, held_access rows) of one analysis."""
    user_groups = [{"id": f"g{n}", "name": name, "policies": policies} for n, (name, policies, _) in enumerate(groups)]
    links = [{"user_group_id": f"g{n}", "member_id": m} for n, (_, _, ids) in enumerate(groups) for m in ids]
    _, vgm, findings, held = analyse(ACCT, vgs, PGS, members, user_groups, mapping, group_members=links)
    by_code = {}
    for f in findings:
        by_code.setdefault(f.code, []).append(f.subject)
    return by_code, vgm, list(held)


def dns_vg(*emails, role="DNS"):
    return VirtualGroup("v1", f"CF-{ACCT} - {role}", tuple(emails))


# --- role_not_held: held through anything, under the old or the new name -----------------------------


def test_a_role_held_through_a_user_group_is_held():
    ada = member(1)
    allow = ("DNS team", [policy("allow", DNS)], ["m1"])
    codes, vgm, _ = analysed([ada, ROOT], [dns_vg("u1@x.example")], [allow])
    assert "role_not_held" not in codes and vgm[0]["holds"] == 1
    # ... but not through an allow on one domain, nor when any group or own policy denies it
    on_a_domain = ("DNS team", [policy("allow", DNS, ZONE)], ["m1"])
    assert analysed([ada, ROOT], [dns_vg("u1@x.example")], [on_a_domain])[0]["role_not_held"] == ["u1@x.example"]
    denied = ("No DNS", [policy("deny", DNS, ZONE)], ["m1"])
    codes, vgm, _ = analysed([ada, ROOT], [dns_vg("u1@x.example")], [allow, denied])
    assert codes["role_not_held"] == ["u1@x.example"] and vgm[0]["holds"] == 0
    own_deny = member(1, policies=[policy("deny", DNS)])
    assert analysed([own_deny, ROOT], [dns_vg("u1@x.example")], [allow])[0]["role_not_held"] == ["u1@x.example"]
    # a group the member is not in gives nothing
    assert "role_not_held" in analysed([ada, ROOT], [dns_vg("u1@x.example")], [("DNS team", allow[1], ["m9"])])[0]


def test_a_renamed_or_mapped_role_held_under_its_new_name_is_not_reported_lost():
    """Pins role_not_held to the permission group the role resolved to, not only the role's name."""
    renamed = member(1, policies=[policy("allow", WORKERS)])
    codes, vgm, _ = analysed([renamed, ROOT], [dns_vg("u1@x.example", role="Cloudflare Workers Admin")])
    assert "role_not_held" not in codes and vgm[0]["holds"] == 1
    mapped = member(1, policies=[policy("allow", SSL)])
    codes, vgm, _ = analysed([mapped, ROOT], [dns_vg("u1@x.example", role="HTTP Applications")],
                             mapping={"HTTP Applications": SSL["name"]})
    assert "role_not_held" not in codes and vgm[0]["holds"] == 1
    # held under neither name: reported
    assert analysed([member(1, roles=["Billing"]), ROOT], [dns_vg("u1@x.example", role="Cloudflare Workers Admin")])[0][
        "role_not_held"] == ["u1@x.example"]


def test_one_who_is_not_an_account_member_holds_nothing_and_is_not_role_not_held():
    codes, vgm, _ = analysed([ROOT], [dns_vg("gone@x.example")])
    assert vgm[0]["holds"] is None and "role_not_held" not in codes and codes["not_an_account_member"] == ["gone@x.example"]


# --- the break-glass Super Administrator -------------------------------------------------------------


def test_break_glass_is_a_direct_grant_that_no_user_group_denies():
    vgs = [dns_vg("u1@x.example")]
    ada = member(1)
    assert "no_super_admin_outside_scim" not in analysed([ada, ROOT], vgs)[0]
    by_policy = member(9, policies=[policy("allow", SUPER)])
    assert "no_super_admin_outside_scim" not in analysed([ada, by_policy], vgs)[0]
    # A User Group's allow is not a break-glass (the IdP may own the group; the cutover checks direct
    # grants), but a User Group's deny takes the direct grant back.
    via_group = ("Admins", [policy("allow", SUPER)], ["m1"])
    assert "no_super_admin_outside_scim" in analysed([ada], vgs, [via_group])[0]
    deny = ("Locked", [policy("deny", SUPER, ZONE)], ["m9"])
    assert "no_super_admin_outside_scim" in analysed([ada, ROOT], vgs, [deny])[0]
    in_vg = [VirtualGroup("v2", f"CF-{ACCT} - {SUPER['name']}", ("u9@x.example",))]
    assert "no_super_admin_outside_scim" in analysed([ROOT], in_vg)[0]


# --- effective access: rows per member, permission group and through what ----------------------------


def test_held_access_rows_say_through_what():
    ada = member(1, roles=["DNS", "Cloudflare Workers Admin"], policies=[policy("allow", SSL), policy("allow", DNS, ZONE)])
    groups = [("Supers", [policy("allow", SUPER)], ["m1"])]
    _, _, held = analysed([ada, ROOT], [dns_vg("u1@x.example")], groups)
    mine = sorted((r["permission_group"], r["held_as"], r["through"], r["via"]) for r in held if r["member_id"] == "m1")
    assert mine == [
        ("DNS", "DNS", iam.VIRTUAL_GROUP, f"CF-{ACCT} - DNS"),  # the legacy role its virtual group gives
        (SSL["name"], SSL["name"], iam.OWN_POLICY, ""),
        (SUPER["name"], SUPER["name"], iam.USER_GROUP, "Supers"),
        (WORKERS["name"], "Cloudflare Workers Admin", iam.LEGACY_ROLE, "Cloudflare Workers Admin"),  # renamed: the same role
    ]


def _oracle(sb):
    """(member id, name key of each permission group held on the whole account) by the sandbox."""
    state = sb.state
    names = {**{pid: p["name"] for pid, p in state.permission_groups.items()},
             **{f"role:{rid}": r["name"] for rid, r in state.roles.items()}}
    return {(mid, iam.name_key(names[pid])) for mid, access in state.effective_access().items() for pid, scope in access if scope == ACCOUNT}


@given(seed=accounts())
def test_a_scan_counts_held_access_as_cloudflare_does(seed):
    with tempfile.TemporaryDirectory() as tmp, Sandbox(seed=seed, rate_limit=None) as sb:
        inventory = Inventory(Path(tmp) / "v.db")
        client = CloudflareClient.connect(sb.base_url, sb.token, sb.account_id)
        scan_id, _, findings = run_scan(client, inventory)
        held = {(r["member_id"], iam.name_key(r["held_as"])) for r in inventory.rows("held_access", scan_id)}
        assert held == _oracle(sb)
        # role_not_held: exactly the account members of a resolved virtual group who hold neither
        # its role nor the permission group it resolved to
        vgs = {v["id"]: v for v in inventory.rows("virtual_groups", scan_id) if v["resolution"] == "resolved"}
        expected = {
            link["email"] for link in inventory.rows("virtual_group_members", scan_id)
            if link["member_id"] and link["virtual_group_id"] in vgs
            and not {(link["member_id"], iam.name_key(vgs[link["virtual_group_id"]][k])) for k in ("role", "permission_group_name")} & held
        }
        assert {f.subject for f in findings if f.code == "role_not_held"} == expected
        inventory.close()


def test_the_readme_query_says_who_held_a_role_before_and_after(sandbox, tmp_path):
    """The effective_access view, queried as the README does, over a scan before an apply and one after."""
    import re
    import sqlite3

    from engine_support import run

    db = tmp_path / "v.db"
    run(sandbox, db, "scan")
    run(sandbox, db, "plan", "--on-existing", "suffix", "--out", tmp_path / "p.json", expect=0)
    run(sandbox, db, "apply", tmp_path / "p.json", "--yes")
    run(sandbox, db, "scan")
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    query = re.search(r'sqlite3 -header -column vgmigrate\.db "(.+?)"', readme, re.S).group(1).replace("(1, 4)", "(1, 2)")
    with sqlite3.connect(db) as conn:
        rows = conn.execute(query).fetchall()
    ways = {(email, scan, through, via) for email, scan, through, via in rows}
    # each member of the Administrator virtual group holds it through that group before, and also
    # through the new User Group after
    vg_members = {e for e, s, t, _ in ways if s == 1 and t == iam.VIRTUAL_GROUP}
    assert vg_members
    for email in vg_members:
        assert (email, 2, iam.USER_GROUP, "Administrator") in ways, email
    assert not {e for e, s, t, _ in ways if s == 1 and t == iam.USER_GROUP}


# --- verify counts only a policy on the whole account -------------------------------------------------


def test_verify_fails_when_a_policy_is_moved_to_a_domain_scoped_resource_group(sandbox, tmp_path):
    """Pins verify to iam.is_account_wide: the same scope key with a zone object is one domain, not the account."""
    import json

    from engine_support import run
    from migrate.sandbox.seeds import tag

    db = tmp_path / "v.db"
    run(sandbox, db, "scan")
    run(sandbox, db, "plan", "--on-existing", "suffix", "--out", tmp_path / "p.json")
    run(sandbox, db, "apply", tmp_path / "p.json", "--yes")
    run(sandbox, db, "verify")
    state = sandbox.state
    zone_rg = state.resource_groups[tag("rg:zone")]
    assert zone_rg["scope"]["key"].endswith(state.account["id"]) and zone_rg["scope"]["objects"] != [{"key": "*"}]
    with state.lock:
        dns = state.user_groups[state.user_group_ids_by_name["DNS"]]
        for policy in dns["policies"]:
            policy["resource_groups"] = [zone_rg["id"]]
    found = run(sandbox, db, "verify", "--json", expect=3)
    diffs = json.loads(found.output)["differences"]
    assert ("policy_missing", "DNS") in [(d["kind"], d["subject"]) for d in diffs]
    assert {d["kind"] for d in diffs} == {"policy_missing", "access_not_granted"}  # its members no longer get DNS
