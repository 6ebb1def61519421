"""The IdP-managed path end to end: `plan --mode idp`, apply, verify, cutover and rollback against
the Cloudflare sandbox and the Authentik emulator that pushes into it over SCIM."""

import json

import pytest
from click.testing import CliRunner
from engine_support import iam_state

from migrate.cli import cli
from migrate.sandbox import Sandbox
from migrate.sandbox.authentik import AuthentikSandbox
from migrate.sandbox.seeds import demo_seed
from migrate.sandbox.watch import AccessWatch

WRITES = ("POST", "PUT", "PATCH", "DELETE")


@pytest.fixture
def pair():
    with Sandbox(seed=demo_seed(), rate_limit=None) as cf, AuthentikSandbox(cloudflare=cf) as ak:
        yield cf, ak


def vg(pair, db, *args, expect=0, env=None):
    cf, ak = pair
    base = {"CLOUDFLARE_API_TOKEN": cf.token, "CLOUDFLARE_ACCOUNT_ID": cf.account_id, "CLOUDFLARE_BASE_URL": cf.base_url,
            "VGMIGRATE_DB": str(db), "AUTHENTIK_URL": ak.base_url, "AUTHENTIK_TOKEN": ak.token}
    result = CliRunner().invoke(cli, [str(a) for a in args], env={**base, **(env or {})}, catch_exceptions=False)
    assert expect is None or result.exit_code == expect, f"{args} exited {result.exit_code}:\n{result.output}"
    return result


def roles(cf):
    return {m["id"]: frozenset(m["roles"]) for m in cf.state.snapshot()["members"]}


def authentik_groups(ak):
    """Every Authentik group: name -> member pks, read over the API."""
    import requests

    body = requests.get(f"{ak.base_url}/core/groups/", params={"page_size": 1000}, headers={"Authorization": f"Bearer {ak.token}"}).json()
    return {g["name"]: sorted(g["users"]) for g in body["results"]}


def authentik_user_pks(ak):
    import requests

    body = requests.get(f"{ak.base_url}/core/users/", params={"page_size": 1000}, headers={"Authorization": f"Bearer {ak.token}"}).json()
    return {u["email"].casefold(): u["pk"] for u in body["results"]}


def plan_idp(pair, tmp_path, *extra):
    db, out = tmp_path / "v.db", tmp_path / "plan.json"
    vg(pair, db, "scan")
    vg(pair, db, "plan", "--mode", "idp", "--on-existing", "suffix", "--out", out, *extra)
    return db, out, json.loads(out.read_text())


def test_idp_mode_migrates_through_authentik_cuts_over_and_rolls_back_exactly(pair, tmp_path):
    cf, ak = pair
    start_iam, start_roles, start_ak = iam_state(cf), roles(cf), authentik_groups(ak)
    db, out, plan = plan_idp(pair, tmp_path)
    kinds = {s["kind"] for s in plan["steps"]}
    assert kinds == {"create_idp_group", "scope_idp_groups", "sync_idp_group", "attach_idp_policy"}
    assert plan["idp"]["scope"] == "listed" and plan["idp"]["provider"]["pk"] == ak.provider_id
    watch = AccessWatch(cf, plan)

    vg(pair, db, "apply", out, "--yes")
    created = {g["name"]: g for g in cf.state.snapshot()["user_groups"] if g["name"] in {p["name"] for p in plan["groups"]}}
    assert len(created) == len(plan["groups"])
    # Pushed by the IdP, so locked to it; members copied; vgmigrate wrote only the policy.
    assert all(g["scim_managed"] and g["policies"] for g in created.values())
    for group in plan["groups"]:
        assert sorted(created[group["name"]]["members"]) == sorted(m["id"] for m in group["members"])
    cf_writes = [c for c in cf.calls if c[0] in WRITES and "/scim/" not in c[1]]
    assert {c[0] for c in cf_writes} == {"PUT"} and len(cf_writes) == len(plan["groups"])
    assert "Nothing to do" in vg(pair, db, "plan", "--mode", "idp", "--on-existing", "suffix").output
    vg(pair, db, "verify")

    cut = vg(pair, db, "cutover", "--yes")
    after_cutover, pk_of = authentik_groups(ak), authentik_user_pks(ak)
    # The demo account has members in a virtual group whose role was taken from them by hand:
    # they stay (putting them back on rollback would grant the role again), and the output says so.
    stayed = set()
    for group in plan["groups"]:
        moved = {pk_of[m["email"].casefold()] for m in group["members"]}
        for v in group["virtual_groups"]:
            assert moved & set(start_ak[v["name"]])
            stayed |= moved & set(after_cutover[v["name"]])
    assert 0 < len(stayed) < sum(len(g["members"]) for g in plan["groups"]) and f"{len(stayed)} migrated member(s) stay" in cut.output
    lost_legacy = [mid for mid, r in roles(cf).items() if r < start_roles.get(mid, frozenset())]
    assert lost_legacy, "the cutover took legacy roles away in Cloudflare"
    assert watch.violations == [] and watch.checks > len(plan["steps"])
    assert "cutover" in vg(pair, db, "status").output

    vg(pair, db, "rollback", "--yes")
    watch.stop()
    assert iam_state(cf) == start_iam and roles(cf) == start_roles and authentik_groups(ak) == start_ak
    assert "nothing left to undo" in vg(pair, db, "rollback", "--yes").output


def test_a_provider_that_syncs_every_group_keeps_its_empty_filter(tmp_path):
    with Sandbox(seed=demo_seed(), rate_limit=None) as cf, AuthentikSandbox(cloudflare=cf, scope="all") as ak:
        db, out, plan = plan_idp((cf, ak), tmp_path)
        assert plan["idp"]["scope"] == "all" and "scope_idp_groups" not in {s["kind"] for s in plan["steps"]}
        vg((cf, ak), db, "apply", out, "--yes")
        vg((cf, ak), db, "verify")
        assert not [c for c in ak.calls if c[0] == "PATCH" and "/providers/scim/" in c[1]]


def test_the_sync_scope_is_widened_once_and_restored_by_rollback(pair, tmp_path):
    cf, ak = pair
    before = ak.state.providers[ak.provider_id]["group_filters"][:]
    db, out, plan = plan_idp(pair, tmp_path)
    vg(pair, db, "apply", out, "--yes")
    after = ak.state.providers[ak.provider_id]["group_filters"]
    assert after[: len(before)] == before and len(after) == len(before) + len(plan["groups"])
    assert len([c for c in ak.calls if c[0] == "PATCH" and "/providers/scim/" in c[1]]) == 1
    vg(pair, db, "rollback", "--yes")
    assert ak.state.providers[ak.provider_id]["group_filters"] == before


def test_a_lost_create_is_found_again_not_sent_twice(pair, tmp_path):
    cf, ak = pair
    db, out, plan = plan_idp(pair, tmp_path)
    ak.inject("POST", r"/core/groups/$", "lose")  # the group is made, the answer never arrives
    vg(pair, db, "apply", out, "--yes")
    creates = [c for c in ak.calls if c[0] == "POST" and c[1].endswith("/core/groups/")]
    assert len(creates) == len(plan["groups"])  # the lost one was reconciled, never resent
    vg(pair, db, "verify")


def test_sync_errors_fail_the_step_in_one_line_and_a_rerun_finishes(tmp_path):
    with Sandbox(seed=demo_seed(), rate_limit=None) as cf, AuthentikSandbox(cloudflare=cf, provider_token="wrong-token") as ak:
        db, out, plan = plan_idp((cf, ak), tmp_path)
        failed = vg((cf, ak), db, "apply", out, "--yes", expect=1)
        assert "Authentik could not push" in failed.output or "did not reach Cloudflare" in failed.output
        assert "wrong-token" not in failed.output
        assert not [g for g in cf.state.snapshot()["user_groups"] if g["policies"] and g["name"] in {p["name"] for p in plan["groups"]}]
        ak.state.providers[ak.provider_id]["token"] = cf.token  # the admin fixes the token
        vg((cf, ak), db, "apply", out, "--yes")
        vg((cf, ak), db, "verify")


def test_plan_refuses_names_taken_in_authentik_unless_suffixed(pair, tmp_path):
    cf, ak = pair
    import requests

    requests.post(f"{ak.base_url}/core/groups/", json={"name": "DNS"}, headers={"Authorization": f"Bearer {ak.token}"}).raise_for_status()
    db = tmp_path / "v.db"
    vg(pair, db, "scan")
    refused = vg(pair, db, "plan", "--mode", "idp", expect=1)
    assert "already exists in Authentik" in refused.output and "--on-existing suffix" in refused.output
    assert "adopt" in vg(pair, db, "plan", "--mode", "idp", "--on-existing", "adopt", expect=1).output
    out = tmp_path / "plan.json"
    vg(pair, db, "plan", "--mode", "idp", "--on-existing", "suffix", "--out", out)
    assert "DNS (2)" in {g["name"] for g in json.loads(out.read_text())["groups"]}


def test_apply_refuses_a_plan_whose_authentik_side_moved(pair, tmp_path):
    cf, ak = pair
    import requests

    db, out, plan = plan_idp(pair, tmp_path)
    name = plan["groups"][0]["name"]
    requests.post(f"{ak.base_url}/core/groups/", json={"name": name}, headers={"Authorization": f"Bearer {ak.token}"}).raise_for_status()
    calls = len(ak.calls)
    refused = vg(pair, db, "apply", out, "--yes", expect=1)
    assert f"an Authentik group named {name!r} now exists" in refused.output
    assert not [c for c in ak.calls[calls:] if c[0] in WRITES]


def test_idp_mode_needs_authentik_settings(pair, tmp_path):
    db = tmp_path / "v.db"
    vg(pair, db, "scan")
    missing = vg(pair, db, "plan", "--mode", "idp", env={"AUTHENTIK_URL": ""}, expect=2)
    assert missing.output.strip().startswith("Error: no Authentik URL") and len(missing.output.strip().splitlines()) == 1


def test_cutover_refuses_until_verify_is_clean_and_changes_nothing(pair, tmp_path):
    cf, ak = pair
    import requests

    db, out, plan = plan_idp(pair, tmp_path)
    vg(pair, db, "apply", out, "--yes")
    group = next(g for g in plan["groups"] if g["members"])
    uuid = next(g for g in ak.state.groups.values() if g["name"] == group["name"])["pk"]
    user = sorted(authentik_groups(ak)[group["name"]])[0]
    requests.post(f"{ak.base_url}/core/groups/{uuid}/remove_user/", json={"pk": user}, headers={"Authorization": f"Bearer {ak.token}"}).raise_for_status()
    ak.settle()  # someone's change by hand, pushed by the time the cutover runs
    before, calls = authentik_groups(ak), len(ak.calls)
    refused = vg(pair, db, "cutover", "--yes", expect=1)
    assert "difference" in refused.output and "verify" in refused.output
    assert authentik_groups(ak) == before and not [c for c in ak.calls[calls:] if c[0] in WRITES]


def test_cutover_refuses_to_leave_no_super_administrator_outside_scim(pair, tmp_path):
    cf, ak = pair
    db, out, plan = plan_idp(pair, tmp_path)
    vg(pair, db, "apply", out, "--yes")
    vg(pair, db, "verify")
    with cf.state.lock:  # the break-glass admin loses the role directly
        for member in cf.state.members.values():
            in_vg = any(g for g in member.get("scim_groups", ()))
            if not in_vg:
                member["roles"] = [r for r in member["roles"] if "Super" not in str(cf.state.roles.get(r if isinstance(r, str) else r.get("id"), {}).get("name", ""))]
    calls = len(ak.calls)
    refused = vg(pair, db, "cutover", "--yes", expect=1)
    assert "Super Administrator outside SCIM" in refused.output
    assert not [c for c in ak.calls[calls:] if c[0] in WRITES]


def test_a_sync_whose_answer_is_lost_is_checked_not_resent_and_the_next_run_finishes(pair, tmp_path):
    cf, ak = pair
    db, out, plan = plan_idp(pair, tmp_path)
    watch = AccessWatch(cf, plan)
    ak.inject("POST", r"/sync/object/$", "5xx")  # a 5xx on a POST: the outcome is unknown
    result = vg(pair, db, "apply", out, "--yes", expect=None)
    if result.exit_code == 1:  # not arrived yet: pending, and the next run checks before sending
        assert "outcome is unknown" in result.output
        vg(pair, db, "apply", out, "--yes")
    else:  # the sync had gone through: found there, done
        assert result.exit_code == 0
    syncs = [c for c in ak.calls if c[0] == "POST" and c[1].endswith("/sync/object/")]
    assert len(syncs) == len(plan["groups"]) + (result.exit_code == 1)
    vg(pair, db, "verify")
    assert watch.violations == []


def test_a_cutover_write_whose_answer_is_lost_is_found_done_and_rollback_restores_exactly(pair, tmp_path):
    cf, ak = pair
    start_iam, start_roles, start_ak = iam_state(cf), roles(cf), authentik_groups(ak)
    db, out, plan = plan_idp(pair, tmp_path)
    watch = AccessWatch(cf, plan)
    vg(pair, db, "apply", out, "--yes")
    ak.inject("PATCH", r"/core/groups/[^/]+/$", "lose")  # the second group's removal: done, answer lost
    vg(pair, db, "cutover", "--yes")  # the lost one is found done; the cutover finishes
    assert "cutover" in vg(pair, db, "history").output
    vg(pair, db, "rollback", "--yes")
    watch.stop()
    assert watch.violations == []
    assert iam_state(cf) == start_iam and roles(cf) == start_roles and authentik_groups(ak) == start_ak


def test_a_group_renamed_in_authentik_mid_run_is_a_difference_and_blocks_the_cutover(pair, tmp_path):
    cf, ak = pair
    import requests

    db, out, plan = plan_idp(pair, tmp_path)
    vg(pair, db, "apply", out, "--yes")
    group = plan["groups"][0]
    uuid = next(g for g in ak.state.groups.values() if g["name"] == group["name"])["pk"]
    requests.patch(f"{ak.base_url}/core/groups/{uuid}/", json={"name": "Renamed by hand"},
                   headers={"Authorization": f"Bearer {ak.token}"}).raise_for_status()
    ak.settle()
    assert "Renamed by hand" in {g["name"] for g in cf.state.snapshot()["user_groups"]}  # same id, new name
    assert "name_changed" in vg(pair, db, "verify", expect=3).output
    before, calls = authentik_groups(ak), len(ak.calls)
    refused = vg(pair, db, "cutover", "--yes", expect=1)
    assert len(refused.output.strip().splitlines()) == 1 and "verify" in refused.output
    assert authentik_groups(ak) == before and not [c for c in ak.calls[calls:] if c[0] in WRITES]


def test_the_audit_export_lists_each_grant_made_through_the_idp(pair, tmp_path):
    import sqlite3

    db, out, plan = plan_idp(pair, tmp_path)
    vg(pair, db, "apply", out, "--yes")
    rows = sqlite3.connect(db).execute("select email, user_group, permission_group, outcome from access_grants").fetchall()
    expected = {(m["email"], g["name"], g["permission_group"]["name"], "granted") for g in plan["groups"] for m in g["members"]}
    assert set(rows) == expected and len(rows) == len(expected)
    vg(pair, db, "rollback", "--yes")
    assert {r[0] for r in sqlite3.connect(db).execute("select outcome from access_grants")} == {"rolled back"}


def test_the_approval_report_shows_the_authentik_side(pair, tmp_path):
    db, out, plan = plan_idp(pair, tmp_path)
    report = vg(pair, db, "show", out, "--format", "markdown").output
    side = report.split("## In Authentik", 1)[1].split("## To apply", 1)[0]
    assert all(g["name"] in side for g in plan["groups"]) and "push scope" in side and "cutover" in side
    assert "<h2>In Authentik</h2>" in vg(pair, db, "show", out, "--format", "html").output


@pytest.mark.parametrize("setup, env, says", [
    ({}, {"AUTHENTIK_TOKEN": "not-the-token"}, "Authentik API"),
    ({"attached": False}, {}, "not attached to an application"),
    ({"provider": False}, {}, "no Authentik SCIM provider points at"),
    ({"version": "2024.6.3"}, {}, "cannot sync one group on demand"),
])
def test_plan_idp_refuses_an_unusable_authentik_in_one_line_and_writes_nothing(tmp_path, setup, env, says):
    with Sandbox(seed=demo_seed(), rate_limit=None) as cf, AuthentikSandbox(cloudflare=cf, **setup) as ak:
        db = tmp_path / "v.db"
        vg((cf, ak), db, "scan")
        refused = vg((cf, ak), db, "plan", "--mode", "idp", "--on-existing", "suffix", "--out", tmp_path / "p.json", env=env, expect=1)
        assert says in refused.output and len(refused.output.strip().splitlines()) == 1
        assert "not-the-token" not in refused.output and not (tmp_path / "p.json").exists()
        assert not [c for c in ak.calls + cf.calls if c[0] in WRITES]


def test_a_group_that_never_reaches_cloudflare_times_out_and_the_next_apply_finishes(pair, tmp_path):
    cf, ak = pair
    db, out, plan = plan_idp(pair, tmp_path)
    ak.state.providers[ak.provider_id]["dry_run"] = True  # someone turns dry run on after approval: nothing is pushed
    failed = vg(pair, db, "apply", out, "--yes", "--sync-timeout", "1", expect=1)
    assert "did not reach Cloudflare" in failed.output and "within 1 s" in failed.output
    assert not [g for g in cf.state.snapshot()["user_groups"] if g["name"] in {p["name"] for p in plan["groups"]}]
    ak.state.providers[ak.provider_id]["dry_run"] = False
    vg(pair, db, "apply", out, "--yes")
    vg(pair, db, "verify")


def scim_links(ak):
    """Authentik group name -> Cloudflare ids its SCIM group links point at."""
    links = {}
    for link in ak.state.group_links.values():
        links.setdefault(ak.state.groups[link["group"]]["name"], set()).add(link["scim_id"])
    return links


def group_filter_names(ak):
    return {ak.state.groups[g]["name"] for g in ak.state.providers[ak.provider_id]["group_filters"]}


def test_cutover_delete_groups_deletes_only_emptied_groups_and_rollback_rebuilds_them_exactly(pair, tmp_path):
    cf, ak = pair
    start = iam_state(cf), roles(cf), authentik_groups(ak), scim_links(ak), group_filter_names(ak)
    system_groups = set(cf.state.scim_groups)
    db, out, plan = plan_idp(pair, tmp_path)
    watch = AccessWatch(cf, plan)
    vg(pair, db, "apply", out, "--yes")
    cut = vg(pair, db, "cutover", "--yes", "--delete-groups")
    after = authentik_groups(ak)
    deleted = set(start[2]) - set(after)
    planned = {v["name"] for g in plan["groups"] for v in g["virtual_groups"]}
    assert deleted and deleted <= planned  # never a group the plan does not migrate (e.g. the empty "Contractors")
    for name in planned - deleted:  # kept: someone is still in it, and the output says so
        assert after[name] and f"{name!r} is not deleted: {len(after[name])} member(s) left in it" in cut.output
    # Cloudflare refuses to delete a system group over SCIM: it stays, so its id can be linked again.
    assert set(cf.state.scim_groups) == system_groups
    assert not deleted & set(scim_links(ak)) and not deleted & group_filter_names(ak)
    assert watch.violations == []

    vg(pair, db, "rollback", "--yes")
    watch.stop()
    assert watch.violations == []
    assert (iam_state(cf), roles(cf), authentik_groups(ak), scim_links(ak), group_filter_names(ak)) == start
    assert "nothing left to undo" in vg(pair, db, "rollback", "--yes").output


def test_a_lost_answer_to_the_group_delete_is_reconciled_and_rolled_back(pair, tmp_path):
    cf, ak = pair
    start = roles(cf), authentik_groups(ak), scim_links(ak)
    db, out, plan = plan_idp(pair, tmp_path)
    vg(pair, db, "apply", out, "--yes")
    ak.inject("DELETE", r"/core/groups/", "lose")  # the first group is deleted, the answer never arrives
    vg(pair, db, "cutover", "--yes", "--delete-groups")
    deletes = [c for c in ak.calls if c[0] == "DELETE" and "/core/groups/" in c[1]]
    lost = deletes[0]
    assert lost[2] is None and [c for c in deletes if c[1] == lost[1] and c[2] == 204] == []  # deleted once, by the lost call
    assert len({c[1] for c in deletes}) == len(set(start[1]) - set(authentik_groups(ak)))
    assert "cutover" in vg(pair, db, "history").output
    vg(pair, db, "rollback", "--yes")
    assert (roles(cf), authentik_groups(ak), scim_links(ak)) == start


def test_a_second_cutover_with_delete_groups_deletes_what_the_first_emptied(pair, tmp_path):
    cf, ak = pair
    start = iam_state(cf), roles(cf), authentik_groups(ak), scim_links(ak)
    db, out, plan = plan_idp(pair, tmp_path)
    vg(pair, db, "apply", out, "--yes")
    vg(pair, db, "cutover", "--yes")
    emptied = {name for name, users in authentik_groups(ak).items() if not users and name.upper().startswith("CF-")}
    assert emptied
    vg(pair, db, "cutover", "--yes", "--delete-groups")  # its members come from the first run's journal
    assert not emptied & set(authentik_groups(ak))
    vg(pair, db, "rollback", "--yes")
    assert (iam_state(cf), roles(cf), authentik_groups(ak), scim_links(ak)) == start


def test_a_rollback_stopped_while_rebuilding_a_deleted_group_is_finished_by_the_next(pair, tmp_path):
    cf, ak = pair
    start = iam_state(cf), roles(cf), authentik_groups(ak), scim_links(ak)
    db, out, plan = plan_idp(pair, tmp_path)
    vg(pair, db, "apply", out, "--yes")
    vg(pair, db, "cutover", "--yes", "--delete-groups")
    ak.inject("POST", r"/providers/scim_groups/$", "5xx")  # the group is back, its SCIM link is not
    stopped = vg(pair, db, "rollback", "--yes", expect=1)
    assert "scim_groups" in stopped.output and ak.token not in stopped.output
    preview = vg(pair, db, "rollback", "--dry-run").output
    assert "finish re-creating Authentik group" in preview and "would leave" not in preview
    vg(pair, db, "rollback", "--yes")
    assert (iam_state(cf), roles(cf), authentik_groups(ak), scim_links(ak)) == start


def test_rehearse_says_it_replays_api_mode_plans_only(pair, tmp_path):
    db, out, plan = plan_idp(pair, tmp_path)
    refused = vg(pair, db, "rehearse", out, expect=1)
    assert "api-mode plans" in refused.output and "sandbox serve" in refused.output and "--authentik" in refused.output


def test_rollback_of_an_idp_migration_without_authentik_settings_says_so_and_changes_nothing(pair, tmp_path):
    cf, ak = pair
    db, out, plan = plan_idp(pair, tmp_path)
    vg(pair, db, "apply", out, "--yes")
    vg(pair, db, "cutover", "--yes")
    before, calls = (iam_state(cf), authentik_groups(ak)), len(ak.calls) + len(cf.calls)
    refused = vg(pair, db, "rollback", "--yes", env={"AUTHENTIK_URL": "", "AUTHENTIK_TOKEN": ""}, expect=2)
    assert "no Authentik URL; set AUTHENTIK_URL" in refused.output and "Traceback" not in refused.output
    assert (iam_state(cf), authentik_groups(ak)) == before
    assert not [c for c in (ak.calls + cf.calls)[calls:] if c[0] in WRITES]
    vg(pair, db, "rollback", "--yes")  # with the settings back, it finishes
    assert not [g for g in cf.state.snapshot()["user_groups"] if g["name"] in {p["name"] for p in plan["groups"]}]
