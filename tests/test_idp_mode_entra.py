"""The IdP-managed path through Entra ID end to end: `plan --mode idp`, apply, verify, cutover (and
`--delete-groups`) and rollback against the Cloudflare sandbox and the Entra emulator, which
provisions into it on demand and by its (compressed) cycle; and the ways Entra can refuse, each one
line that changes nothing."""

import json

import pytest
from click.testing import CliRunner
from engine_support import iam_state

from migrate.cli import cli
from migrate.sandbox import Sandbox
from migrate.sandbox.entra import FULL_ROLES, EntraSandbox
from migrate.sandbox.seeds import demo_seed
from migrate.sandbox.watch import AccessWatch

WRITES = ("POST", "PUT", "PATCH", "DELETE")


@pytest.fixture
def pair():
    with Sandbox(seed=demo_seed(), rate_limit=None) as cf, EntraSandbox(cloudflare=cf, cycle_seconds=0.5) as entra:
        yield cf, entra


def vg(pair, db, *args, expect=0, env=None):
    cf, entra = pair
    base = {"CLOUDFLARE_API_TOKEN": cf.token, "CLOUDFLARE_ACCOUNT_ID": cf.account_id, "CLOUDFLARE_BASE_URL": cf.base_url,
            "VGMIGRATE_DB": str(db), **entra.environment()}
    result = CliRunner().invoke(cli, [str(a) for a in args], env={**base, **(env or {})}, catch_exceptions=False)
    assert expect is None or result.exit_code == expect, f"{args} exited {result.exit_code}:\n{result.output}"
    for secret in (cf.token, entra.client_secret):
        assert secret not in result.output
    return result


def roles(cf):
    return {m["id"]: frozenset(m["roles"]) for m in cf.state.snapshot()["members"]}


def entra_side(entra):
    """Every Entra group (name -> member ids) and which group names are assigned to the application."""
    with entra.state.lock:
        state = entra.state
        groups = {g["displayName"]: sorted(g["members"]) for g in state.groups.values()}
        assigned = sorted(state.groups[g]["displayName"] for g in state.assigned_groups(entra.service_principal_id))
    return groups, assigned


def entra_writes(entra):
    return [c for c in entra.calls if c[0] in WRITES and not c[1].endswith("/token")]


def plan_idp(pair, tmp_path, *extra, expect=0):
    db, out = tmp_path / "v.db", tmp_path / "plan.json"
    vg(pair, db, "scan", "--source", "entra")
    planned = vg(pair, db, "plan", "--mode", "idp", "--on-existing", "suffix", "--out", out, *extra, expect=expect)
    return db, out, (json.loads(out.read_text()) if out.exists() else None), planned


def test_idp_mode_migrates_through_entra_cuts_over_and_rolls_back_exactly(pair, tmp_path):
    cf, entra = pair
    start = iam_state(cf), roles(cf), entra_side(entra)
    db, out, plan, _ = plan_idp(pair, tmp_path)
    assert {s["kind"] for s in plan["steps"]} == {"create_idp_group", "scope_idp_groups", "sync_idp_group", "attach_idp_policy"}
    assert plan["idp"]["source"] == "entra" and plan["idp"]["provider"]["pk"] == entra.service_principal_id
    watch = AccessWatch(cf, plan)

    vg(pair, db, "apply", out, "--yes")
    created = {g["name"]: g for g in cf.state.snapshot()["user_groups"] if g["name"] in {p["name"] for p in plan["groups"]}}
    assert len(created) == len(plan["groups"]) and all(g["scim_managed"] and g["policies"] for g in created.values())
    for group in plan["groups"]:
        assert sorted(created[group["name"]]["members"]) == sorted(m["id"] for m in group["members"])
    groups, assigned = entra_side(entra)
    assert {g["name"] for g in plan["groups"]} <= set(assigned)  # the new groups are assigned to the application
    assert any(p.endswith("/provisionOnDemand") for _, p, _ in entra.calls)  # pushed on demand, not left to the cycle
    assert "Nothing to do" in vg(pair, db, "plan", "--mode", "idp", "--on-existing", "suffix").output
    vg(pair, db, "verify")

    vg(pair, db, "cutover", "--yes")
    assert [mid for mid, r in roles(cf).items() if r < start[1].get(mid, frozenset())], "the cutover took no legacy role away"
    assert watch.violations == []

    vg(pair, db, "rollback", "--yes")
    watch.stop()
    assert watch.violations == []
    assert (iam_state(cf), roles(cf), entra_side(entra)) == start
    assert "nothing left to undo" in vg(pair, db, "rollback", "--yes").output
    vg(pair, db, "export", "--format", "jsonl", "--out", tmp_path / "audit")
    kept = db.read_bytes() + b"".join(p.read_bytes() for p in (tmp_path / "audit").rglob("*") if p.is_file()) + out.read_bytes()
    for secret in [entra.client_secret, *entra._tokens]:  # the secret and every token Entra issued
        assert secret.encode() not in kept


def test_cutover_delete_groups_and_its_rollback_are_exact(pair, tmp_path):
    cf, entra = pair
    start = iam_state(cf), roles(cf), entra_side(entra)
    system_groups = set(cf.state.scim_groups)
    db, out, plan, _ = plan_idp(pair, tmp_path)
    watch = AccessWatch(cf, plan)
    vg(pair, db, "apply", out, "--yes")
    vg(pair, db, "cutover", "--yes", "--delete-groups")
    deleted = set(start[2][0]) - set(entra_side(entra)[0])
    assert deleted and deleted <= {v["name"] for g in plan["groups"] for v in g["virtual_groups"]}
    assert set(cf.state.scim_groups) == system_groups  # Cloudflare refuses to delete a system group
    vg(pair, db, "rollback", "--yes")
    watch.stop()
    assert watch.violations == []
    assert (iam_state(cf), roles(cf), entra_side(entra)) == start


def test_a_group_larger_than_graph_s_batches_is_created_and_pushed_in_them(tmp_path):
    seed = demo_seed()
    with Sandbox(seed=seed, rate_limit=None) as cf, EntraSandbox(cloudflare=cf, cycle_seconds=0.5) as entra:
        with entra.state.lock:  # every account member into the Administrator virtual group, in Entra and Cloudflare alike
            users = {u["userPrincipalName"].lower(): u["id"] for u in entra.state.users.values()}
            admin = next(g for g in entra.state.groups.values() if g["displayName"].endswith(" - Administrator")
                         and cf.account_id in g["displayName"])
        with cf.state.lock:
            system = next(gid for gid, g in cf.state.scim_groups.items() if g["displayName"] == admin["displayName"])
            scim_users = [u for u in cf.state.scim_users.values() if u["userName"].lower() in users]
        for u in scim_users:
            cf.state.scim_change_system_members(system, "add", [u["id"]])
        with entra.state.lock:
            admin["members"] = sorted(set(admin["members"]) | {users[u["userName"].lower()] for u in scim_users})
            entra.state.group_links[(entra.service_principal_id, admin["id"])]["members"] = set(admin["members"])
        assert len(admin["members"]) > 20
        db, out, plan, _ = plan_idp((cf, entra), tmp_path)
        vg((cf, entra), db, "apply", out, "--yes")
        big = next(g for g in plan["groups"] if g["name"] == "Administrator")
        writes = entra_writes(entra)
        assert [c for c in writes if c[0] == "POST" and c[1] == "/v1.0/groups"] and \
            [c for c in writes if c[0] == "PATCH" and c[1].startswith("/v1.0/groups/")]  # the create carries 20 members, a PATCH the rest
        pushes = [c for c in writes if c[1].endswith("/provisionOnDemand")]
        assert len(pushes) >= len(plan["groups"]) + 4  # the big group's members go five a request
        vg((cf, entra), db, "verify")
        assert len(big["members"]) > 20


def test_a_quarantined_job_refuses_the_plan_in_one_line_and_changes_nothing(tmp_path):
    with Sandbox(seed=demo_seed(), rate_limit=None) as cf, EntraSandbox(cloudflare=cf, quarantined=True) as entra:
        db, out, plan, planned = plan_idp((cf, entra), tmp_path, expect=1)
        assert plan is None and "quarantine" in planned.output and "Traceback" not in planned.output
        assert entra_writes(entra) == []


@pytest.mark.parametrize("setting, words", [
    ({"ENTRA_CLIENT_SECRET": "not-the-secret"}, "ENTRA_CLIENT_SECRET"),
    ({"ENTRA_TENANT_ID": "00000000-0000-0000-0000-000000000001"}, "ENTRA_TENANT_ID"),
    ({"ENTRA_CLIENT_ID": ""}, "ENTRA_CLIENT_ID"),
])
def test_bad_entra_settings_are_one_line_and_change_nothing(pair, tmp_path, setting, words):
    cf, entra = pair
    result = vg(pair, tmp_path / "v.db", "scan", "--source", "entra", expect=None, env=setting)
    assert result.exit_code != 0 and words in result.output and "Traceback" not in result.output
    assert len([line for line in result.output.strip().splitlines() if line.startswith(("Error", "error"))]) <= 1
    assert entra_writes(entra) == [] and not [c for c in cf.calls if c[0] in WRITES]


def test_a_missing_permission_stops_apply_in_one_line_naming_it(tmp_path):
    with Sandbox(seed=demo_seed(), rate_limit=None) as cf, EntraSandbox(cloudflare=cf) as entra:
        db, out, plan, _ = plan_idp((cf, entra), tmp_path)
        entra.roles = FULL_ROLES - {"Synchronization.ReadWrite.All"}
        result = vg((cf, entra), db, "apply", out, "--yes", expect=1)
        assert "Synchronization.ReadWrite.All" in result.output and "Traceback" not in result.output


def test_a_planned_name_taken_in_entra_since_makes_the_plan_stale(pair, tmp_path):
    cf, entra = pair
    db, out, plan, _ = plan_idp(pair, tmp_path)
    with entra.state.lock:
        entra.state.add_group(plan["groups"][0]["name"])
    result = vg(pair, db, "apply", out, "--yes", expect=1)
    assert "stale" in result.output and "Entra group" in result.output
    assert not [c for c in entra_writes(entra) if c[1] == "/v1.0/groups"]


def test_idp_check_for_entra_passes_on_the_seeded_pair_and_fix_assigns(pair, tmp_path):
    cf, entra = pair
    assert "application: 'Cloudflare'" in vg(pair, tmp_path / "v.db", "idp", "check").output  # exit 0: no problem
    with entra.state.lock:
        taken = next(a for a in entra.state.assignments.values() if a["principalDisplayName"].startswith("CF-" + cf.account_id))
        del entra.state.assignments[taken["id"]]
    broken = vg(pair, tmp_path / "v.db", "idp", "check", expect=1)
    assert "cf_group_not_assigned" in broken.output
    fixed = vg(pair, tmp_path / "v.db", "idp", "check", "--fix", "--yes")
    run_id = fixed.output.split("undo with: vgmigrate rollback --run ")[1].split()[0]
    assert taken["principalId"] in entra.state.assigned_groups(entra.service_principal_id)
    vg(pair, tmp_path / "v.db", "rollback", "--run", run_id, "--yes")
    assert taken["principalId"] not in entra.state.assigned_groups(entra.service_principal_id)


def test_scan_flags_a_member_whose_user_principal_name_is_not_their_email(pair, tmp_path):
    cf, entra = pair
    db = tmp_path / "v.db"
    assert "idp_username_not_email" not in vg(pair, db, "scan", "--source", "entra").output
    with entra.state.lock:
        member = next(iter(next(g for g in entra.state.groups.values() if g["displayName"].startswith("CF-"))["members"]))
        user = entra.state.users[member]
        user["userPrincipalName"] = "someone.else@acme-corp.onmicrosoft.example"
    assert "idp_username_not_email" in vg(pair, db, "scan", "--source", "entra").output
    listed = vg(pair, db, "inventory", "--findings", "idp_username_not_email", "--json").output
    assert "someone.else@acme-corp.onmicrosoft.example" in listed


def test_delete_groups_with_a_member_in_two_cf_groups_of_one_role_deletes_the_emptied_one_and_rolls_back(tmp_path):
    """Each delete waits until Cloudflare has dropped the role of the members who left; one who
    was in two CF- groups of the same role keeps it until both removals land, so every delete
    comes after every removal (found by the Entra property test with --delete-groups)."""
    seed = demo_seed()
    admin = next(g for g in seed["scim_groups"] if g["displayName"].endswith(" - Administrator"))
    twin = dict(admin, id="cloudflare-v1-" + "7" * 32, displayName=f" {admin['displayName']} ")
    seed["scim_groups"].insert(seed["scim_groups"].index(admin), twin)  # listed first, so its steps come first
    member = next(u for u in seed["scim_users"] if admin["id"] in u["groups"])
    member["groups"].append(twin["id"])
    with Sandbox(seed=seed, rate_limit=None) as cf, EntraSandbox(cloudflare=cf, cycle_seconds=0.5) as entra:
        pair = (cf, entra)
        start = iam_state(cf), roles(cf), entra_side(entra)
        db, out, plan, _ = plan_idp(pair, tmp_path)
        assert {admin["displayName"], twin["displayName"]} <= {v["name"] for g in plan["groups"] for v in g["virtual_groups"]}
        vg(pair, db, "apply", out, "--yes")
        vg(pair, db, "cutover", "--yes", "--delete-groups", "--sync-timeout", "10")
        assert twin["displayName"] not in entra_side(entra)[0]  # emptied and deleted; the other keeps someone not migrated
        vg(pair, db, "rollback", "--yes")
        assert (iam_state(cf), roles(cf), entra_side(entra)) == start
