"""The IdP path in a world where Authentik pushes later: from a worker, after its API has answered,
retrying failures. Every check of Cloudflare after an Authentik change must wait for it."""

import json
import time

import pytest
import requests
from click.testing import CliRunner

from migrate.cli import cli
from migrate.sandbox import Sandbox
from migrate.sandbox.authentik import AuthentikSandbox
from migrate.sandbox.authentik.worker import Retry, Worker
from migrate.sandbox.seeds import demo_seed
from migrate.sandbox.watch import AccessWatch

from test_idp_mode import authentik_groups, roles


def vg(cf, ak, db, *args, expect=0):
    env = {"CLOUDFLARE_API_TOKEN": cf.token, "CLOUDFLARE_ACCOUNT_ID": cf.account_id, "CLOUDFLARE_BASE_URL": cf.base_url,
           "VGMIGRATE_DB": str(db), "AUTHENTIK_URL": ak.base_url, "AUTHENTIK_TOKEN": ak.token}
    result = CliRunner().invoke(cli, [str(a) for a in args], env=env, catch_exceptions=False)
    assert expect is None or result.exit_code == expect, f"{args} exited {result.exit_code}:\n{result.output}"
    return result


def migrate_and_verify(cf, ak, tmp_path):
    db, out = tmp_path / "v.db", tmp_path / "plan.json"
    vg(cf, ak, db, "scan")
    vg(cf, ak, db, "plan", "--mode", "idp", "--on-existing", "suffix", "--out", out)
    vg(cf, ak, db, "apply", out, "--yes")
    vg(cf, ak, db, "verify")
    return db, out


# ---- the worker --------------------------------------------------------------------------------------


def test_the_worker_runs_later_in_any_order_and_retries_with_backoff():
    worker = Worker(threads=2, delay=(0.0, 0.05), backoff=0.01, max_retries=3, random_seed=1)
    try:
        order, tries = [], []

        def flaky():
            tries.append(time.monotonic())
            if len(tries) < 3:
                raise Retry()

        for n in range(20):
            worker.send(lambda n=n: order.append(n))
        message = worker.send(flaky)
        assert worker.drain(5)
        assert sorted(order) == list(range(20)) and order != list(range(20))  # all ran, not in the order sent
        assert len(tries) == 3 and message.done.is_set() and not message.failed
        give_up = worker.send(lambda: (_ for _ in ()).throw(Retry()))
        assert worker.drain(5) and give_up.failed and give_up.retries == 3
    finally:
        worker.stop()


def test_authentik_answers_before_it_pushes():
    with Sandbox(seed=demo_seed(), rate_limit=None) as cf, AuthentikSandbox(cloudflare=cf, push_delay=(0.5, 0.6)) as ak:
        group = next(g for g in ak.state.groups.values() if g["name"].endswith(" - Administrator") and g["users"])
        before = roles(cf)
        response = requests.post(f"{ak.base_url}/core/groups/{group['pk']}/remove_user/", json={"pk": sorted(group["users"])[0]},
                                 headers={"Authorization": f"Bearer {ak.token}"}, timeout=5)
        assert response.status_code == 204 and roles(cf) == before  # answered; Cloudflare unchanged yet
        ak.settle()
        assert roles(cf) != before


def test_sync_object_answers_500_when_the_worker_is_busy_and_pushes_later():
    with Sandbox(seed=demo_seed(), rate_limit=None) as cf, \
            AuthentikSandbox(cloudflare=cf, scope="all", push_delay=(0.3, 0.3), object_sync_wait=0.05) as ak:
        headers = {"Authorization": f"Bearer {ak.token}"}
        ben = next(u for u in ak.state.users.values() if u["username"].startswith("ben"))
        uuid = requests.post(f"{ak.base_url}/core/groups/", json={"name": "Cloudflare - Late", "users": [ben["pk"]]},
                             headers=headers, timeout=5).json()["pk"]
        answer = requests.post(f"{ak.base_url}/providers/scim/{ak.provider_id}/sync/object/", headers=headers, timeout=5,
                               json={"sync_object_model": "authentik.core.models.Group", "sync_object_id": uuid})
        assert answer.status_code == 500
        ak.settle()
        assert any(g["name"] == "Cloudflare - Late" for g in cf.state.user_groups.values())


# ---- the tool waits ----------------------------------------------------------------------------------


def test_apply_waits_through_a_500_from_sync_object(tmp_path):
    """Authentik's single-object sync answers 500 when its worker is busy, though the push still
    happens: an unknown outcome, watched for in Cloudflare rather than failed or sent again."""
    with Sandbox(seed=demo_seed(), rate_limit=None) as cf, \
            AuthentikSandbox(cloudflare=cf, push_delay=(0.2, 0.4), object_sync_wait=0.01) as ak:
        migrate_and_verify(cf, ak, tmp_path)
        assert any(c[1].endswith("/sync/object/") and c[2] == 500 for c in ak.calls)


def test_cutover_ends_only_once_cloudflare_has_dropped_the_legacy_roles(tmp_path):
    with Sandbox(seed=demo_seed(), rate_limit=None) as cf, AuthentikSandbox(cloudflare=cf, push_delay=(0.8, 1.2)) as ak:
        db, out = migrate_and_verify(cf, ak, tmp_path)
        before = roles(cf)
        vg(cf, ak, db, "cutover", "--yes")
        dropped = roles(cf)  # read the moment the command returns, no waiting
        assert dropped != before and all(dropped[m] <= before[m] for m in before)
        ak.settle()
        assert roles(cf) == dropped  # nothing was still on its way
        status = vg(cf, ak, db, "status").output
        assert "the migration is complete" in status


def test_a_cutover_whose_removals_have_not_landed_says_so_and_the_next_run_finishes_it(tmp_path):
    with Sandbox(seed=demo_seed(), rate_limit=None) as cf, AuthentikSandbox(cloudflare=cf, push_delay=(2.5, 3.0)) as ak:
        db, out = migrate_and_verify(cf, ak, tmp_path)
        failed = vg(cf, ak, db, "cutover", "--yes", "--sync-timeout", "1", expect=1)
        assert "Cloudflare still gives" in failed.output and "Run `vgmigrate cutover` again" in failed.output
        assert "legacy_role_remains" in vg(cf, ak, db, "verify", expect=3).output
        assert "the migration is complete" not in vg(cf, ak, db, "status").output
        again = vg(cf, ak, db, "cutover", "--yes")
        assert "Cloudflare has dropped the legacy roles" in again.output
        vg(cf, ak, db, "verify")
        assert "the migration is complete" in vg(cf, ak, db, "status").output


def test_rollback_waits_for_the_legacy_roles_before_removing_any_user_group(tmp_path):
    """Authentik puts the members back into their CF- groups later: rollback waits for the roles
    in Cloudflare before it takes the new groups away, so nobody is without access meanwhile."""
    with Sandbox(seed=demo_seed(), rate_limit=None) as cf, AuthentikSandbox(cloudflare=cf, push_delay=(0.5, 1.0)) as ak:
        start_roles, start_ak = roles(cf), authentik_groups(ak)
        db, out = tmp_path / "v.db", tmp_path / "plan.json"
        vg(cf, ak, db, "scan")
        vg(cf, ak, db, "plan", "--mode", "idp", "--on-existing", "suffix", "--out", out)
        watch = AccessWatch(cf, json.loads(out.read_text()))
        try:
            for args in (("apply", out, "--yes"), ("cutover", "--yes"), ("rollback", "--yes")):
                vg(cf, ak, db, *args)
        finally:
            watch.stop()
        assert watch.checks > 20 and watch.violations == [], watch.violations[:3]
        assert roles(cf) == start_roles and authentik_groups(ak) == start_ak


@pytest.mark.parametrize("version", ["2026.2.2", "2026.5.6"])
def test_apply_refuses_a_scope_edit_that_would_make_authentik_delete_a_group(tmp_path, version):
    """From 2026.2.2 each save of the provider deletes, in Cloudflare, the linked groups outside
    group_filters. One is outside now: apply refuses before saving, and nothing is deleted."""
    with Sandbox(seed=demo_seed(), rate_limit=None) as cf, AuthentikSandbox(cloudflare=cf, version=version) as ak:
        provider = ak.state.providers[ak.provider_id]
        outside = next(g for g in ak.state.groups.values() if g["name"] == "Security Team")
        provider["group_filters"] = [g for g in provider["group_filters"] if g != outside["pk"]]
        groups_before = {g["id"] for g in cf.state.user_groups.values()}
        check = vg(cf, ak, tmp_path / "v.db", "idp", "check", expect=1).output
        assert "group_filters_edit_deletes" in check and "'Security Team'" in check
        db, out = tmp_path / "v.db", tmp_path / "plan.json"
        vg(cf, ak, db, "scan")
        vg(cf, ak, db, "plan", "--mode", "idp", "--on-existing", "suffix", "--out", out)
        refused = vg(cf, ak, db, "apply", out, "--yes", expect=1)
        assert "would make Authentik delete 1 group(s) in Cloudflare ('Security Team')" in refused.output
        ak.settle()
        assert {g["id"] for g in cf.state.user_groups.values()} >= groups_before
        assert not [c for c in ak.calls if c[0] == "PATCH" and "/providers/scim/" in c[1]]


def test_a_cutover_killed_after_its_last_call_is_finished_by_the_next(tmp_path):
    """SIGKILL after Authentik took the last removal but before the journal said so: the run is
    left `running` with that removal `pending`. The next cutover finds nothing left to remove,
    checks the pending removal in Authentik, waits for Cloudflare, and marks the run done."""
    import sqlite3

    with Sandbox(seed=demo_seed(), rate_limit=None) as cf, AuthentikSandbox(cloudflare=cf, push_delay=(1.5, 2.0)) as ak:
        db, out = migrate_and_verify(cf, ak, tmp_path)
        vg(cf, ak, db, "cutover", "--yes", "--sync-timeout", "1", expect=1)
        with sqlite3.connect(db) as conn:
            run_id, = conn.execute("select id from runs where kind = 'cutover'").fetchone()
            conn.execute("update runs set status = 'running', finished_at = null where id = ?", [run_id])
            conn.execute("update actions set status = 'pending' where run_id = ? and seq = (select max(seq) from actions where run_id = ?)",
                         [run_id, run_id])
        assert "the migration is complete" not in vg(cf, ak, db, "status").output
        again = vg(cf, ak, db, "cutover", "--yes")
        assert f"cutover {run_id}: done" in again.output
        with sqlite3.connect(db) as conn:
            assert conn.execute("select count(*) from actions where run_id = ? and status != 'done'", [run_id]).fetchone() == (0,)
        assert "the migration is complete" in vg(cf, ak, db, "status").output


def test_waiting_for_the_legacy_roles_reads_only_the_members_who_left(tmp_path):
    """A wait polls: reading the whole member list each time would be 2,000 calls a poll on a
    100,000-member account. The members a cutover took out are read one by one instead."""
    with Sandbox(seed=demo_seed(), rate_limit=None) as cf, AuthentikSandbox(cloudflare=cf, push_delay=(1.0, 1.5)) as ak:
        db, out = migrate_and_verify(cf, ak, tmp_path)
        cf.reset_calls()
        vg(cf, ak, db, "cutover", "--yes")
        listed = [p for m, p, _ in cf.calls if m == "GET" and p.endswith(f"/accounts/{cf.account_id}/members")]
        one_by_one = [p for m, p, _ in cf.calls if m == "GET" and "/members/" in p and "/user_groups/" not in p]
        assert len(listed) <= 2 and one_by_one  # verify and prepare list them once each; the wait does not
