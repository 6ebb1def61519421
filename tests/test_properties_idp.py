"""Property tests of the IdP-managed path (`plan --mode idp`) over generated accounts
(tests/account_strategies.py), with the Authentik emulator seeded from each one.

For every generated account, sync scope ("listed" CF- groups or "all") and Authentik version:

1. scan and `plan --mode idp --on-existing suffix` succeed (an account with no Super Administrator
   outside SCIM is refused first, writing nothing, and planned again with --allow-no-break-glass);
   suffix never refuses a name, whether Cloudflare or Authentik holds it;
2. apply succeeds, verify is clean, a new scan and plan has no steps;
3. the cutover succeeds (it may refuse, writing nothing, only when the plan was told there is no
   break glass), and rollback undoes cutover and apply;
4. from before apply to the end of the rollback, after every write Cloudflare accepts (the IdP's
   SCIM pushes included), nobody has less access than at the start and nobody gains a permission
   group the plan does not list for them (AccessWatch, the sandbox's own oracle);
5. after rollback Cloudflare's User Groups, resource groups and members' roles, Authentik's
   groups (name -> members) and the provider's group_filters are exactly as at the start.

A second part does the same under injected faults on both sides (5xx, lost answers, timeouts,
429s on Authentik, on Cloudflare's IAM API and on the SCIM endpoint Authentik pushes into),
re-running apply, verify, cutover and rollback until they finish as an operator would, and once
with a real SIGKILL of `vgmigrate apply` running in a child process. The three defects these
found are pinned down at the end.

Profiles as in tests/test_properties.py (tests/conftest.py): "default", 35 accounts and 4 fault
seeds, about 15 s for the file; "long", 1000 accounts and 40 fault seeds, about 5 minutes:

    VGMIGRATE_HYPOTHESIS_PROFILE=long python -m pytest -q tests/test_properties_idp.py
"""

import copy
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytest.importorskip("hypothesis", reason="hypothesis is in the `test` extra: pip install -e '.[test]'")

from hypothesis import event, given, note, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.control import currently_in_test_context  # noqa: E402

from account_strategies import ACCOUNT_PGS, ACCT, KEY, ROLE_OF, account, accounts, tag  # noqa: E402
from engine_support import iam_state, idp_cli as vg, succeeded as ok, legacy_roles as roles  # noqa: E402
from migrate import planfile  # noqa: E402
from migrate.idp.authentik import AuthentikClient  # noqa: E402
from migrate.cloudflare import CloudflareClient  # noqa: E402
from migrate.cutover import Cutover, prepare  # noqa: E402
from migrate.errors import VgmigrateError  # noqa: E402
from migrate.executor import apply_plan  # noqa: E402
from migrate.http import RateLimiter  # noqa: E402
from migrate.inventory import Inventory  # noqa: E402
from migrate.rollback import rollback_run  # noqa: E402
from migrate.runs import apply_run  # noqa: E402
from migrate.sandbox import Sandbox  # noqa: E402
from migrate.sandbox.authentik import AuthentikSandbox  # noqa: E402
from migrate.sandbox.seeds import generate_seed  # noqa: E402
from migrate.sandbox.watch import AccessWatch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
VERSIONS = ("2025.10.0", "2026.2.1", "2026.5.6", "2026.8.5")  # before group_filters, with, AKQL search, write-only token
SCOPES = ("listed", "all")
SCRATCH = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None

BREAK_GLASS = {"id": tag(0x3FFF), "email": "Root@Example.com", "status": "accepted",
               "user": {"id": tag(0x4FFF), "email": "Root@Example.com", "first_name": "Root", "last_name": "Example",
                        "two_factor_authentication_enabled": True},
               "roles": [ROLE_OF["Super Administrator - All Privileges"]], "policies": []}


@st.composite
def idp_accounts(draw):
    """Accounts where some virtual group has a member (the others plan nothing), half of them with
    a break-glass Super Administrator outside SCIM (without one the cutover must refuse)."""
    seed = draw(accounts().filter(lambda s: any(u["groups"] for u in s["scim_users"])))
    if draw(st.booleans()):
        seed["members"].append(copy.deepcopy(BREAK_GLASS))
    return seed


def env_for(cf, ak, db):
    return {"CLOUDFLARE_API_TOKEN": cf.token, "CLOUDFLARE_ACCOUNT_ID": cf.account_id, "CLOUDFLARE_BASE_URL": cf.base_url,
            "VGMIGRATE_DB": str(db), "AUTHENTIK_URL": ak.base_url, "AUTHENTIK_TOKEN": ak.token}





def ak_groups(ak):
    """Authentik's groups: name -> member pks (every group, the unrelated ones included)."""
    with ak.state.lock:
        return {g["name"]: sorted(g["users"]) for g in ak.state.groups.values()}


def ak_filters(ak):
    with ak.state.lock:
        provider = ak.state.providers[ak.provider_id]
        return copy.deepcopy({k: provider.get(k) for k in ("group_filters", "filter_group")})


def everything(cf, ak):
    """What the run must leave exactly as it found it."""
    return {"iam": iam_state(cf), "roles": roles(cf), "authentik_groups": ak_groups(ak), "filters": ak_filters(ak)}


def diff(before, after):
    lines = []
    for key in before:
        if before[key] != after[key]:
            if isinstance(before[key], dict):
                for k in sorted(set(before[key]) | set(after[key]), key=str):
                    if before[key].get(k) != after[key].get(k):
                        lines.append(f"{key} {k}: {before[key].get(k)!r} -> {after[key].get(k)!r}")
            else:
                lines.append(f"{key}: {before[key]!r}\n    -> {after[key]!r}")
    return "\n".join(lines)


def plan_idp(cf, ak, db, out, *extra):
    """scan + plan --mode idp --on-existing suffix; the plan, and the extra flags a re-plan needs."""
    ok(vg(cf, ak, db, "scan"), "scan")
    planned = vg(cf, ak, db, "plan", "--mode", "idp", "--on-existing", "suffix", "--out", out, *extra)
    break_glass = []
    if planned.exit_code != 0 and "no_super_admin_outside_scim" in planned.output:
        # No Super Administrator outside SCIM: refused unless told, and nothing is written.
        assert planned.exit_code == 1 and not out.exists(), planned.output
        break_glass = ["--allow-no-break-glass"]
        planned = vg(cf, ak, db, "plan", "--mode", "idp", "--on-existing", "suffix", "--out", out, *extra, *break_glass)
    ok(planned, "plan --mode idp --on-existing suffix")  # suffix never refuses a name
    return json.loads(out.read_text()), break_glass


def check_idp_cycle(seed, scope, version, tmp):
    db, out, again = tmp / "v.db", tmp / "plan.json", tmp / "again.json"
    for path in (db, out, again):
        path.unlink(missing_ok=True)
    with Sandbox(seed=copy.deepcopy(seed), rate_limit=None) as cf, AuthentikSandbox(cloudflare=cf, scope=scope, version=version) as ak:
        start = everything(cf, ak)
        ak_writes = len([c for c in ak.calls if c[0] != "GET"])
        plan, break_glass = plan_idp(cf, ak, db, out)
        if currently_in_test_context():
            note(f"plan: scope {plan['idp']['scope']}, steps {[(s['kind'], s.get('target')) for s in plan['steps']]}")
        assert everything(cf, ak) == start and len([c for c in ak.calls if c[0] != "GET"]) == ak_writes, "planning wrote something"
        if not plan["steps"]:
            ok(vg(cf, ak, db, "apply", out, "--yes"), "apply")
            assert everything(cf, ak) == start and len([c for c in ak.calls if c[0] != "GET"]) == ak_writes
            return "nothing"
        watch, outcome = AccessWatch(cf, plan), "applied and cut over"
        try:
            ok(vg(cf, ak, db, "apply", out, "--yes"), "apply")
            ok(vg(cf, ak, db, "verify"), "verify")
            ok(vg(cf, ak, db, "scan"), "second scan")
            ok(vg(cf, ak, db, "plan", "--mode", "idp", "--on-existing", "suffix", "--out", again, *break_glass), "second plan")
            steps = json.loads(again.read_text())["steps"]
            assert steps == [], f"planning again after apply has steps: {steps}"
            applied, ak_writes = everything(cf, ak), len([c for c in ak.calls if c[0] != "GET"])
            cut = vg(cf, ak, db, "cutover", "--yes")
            if cut.exit_code != 0:
                # The one refusal allowed: no Super Administrator would be left outside SCIM, which
                # the plan was told to accept; nothing is written.
                assert break_glass and cut.exit_code == 1 and \
                    "no accepted Super Administrator outside SCIM" in cut.output, f"cutover exited {cut.exit_code}:\n{cut.output}"
                assert everything(cf, ak) == applied and len([c for c in ak.calls if c[0] != "GET"]) == ak_writes
                outcome = "applied, cutover refused (no break glass)"
            ok(vg(cf, ak, db, "rollback", "--yes"), "rollback")
        finally:
            watch.stop()
        assert watch.violations == [], "access changed beyond the plan:\n" + "\n".join(watch.violations[:10])
        end = everything(cf, ak)
        assert end == start, "rollback did not restore everything:\n" + diff(start, end)
        assert "nothing left to undo" in ok(vg(cf, ak, db, "rollback", "--yes"), "second rollback").output
        return outcome


@given(seed=idp_accounts(), scope=st.sampled_from(SCOPES), version=st.sampled_from(VERSIONS))
def test_every_idp_promise_holds_for_every_account(seed, scope, version):
    with tempfile.TemporaryDirectory(prefix="vgmigrate-prop-idp-", dir=SCRATCH) as tmp:
        event(check_idp_cycle(seed, scope, version, Path(tmp)))


# --- faults on both sides: the operator re-runs each command until it finishes ---------------------

# What vgmigrate asks of Authentik, writes twice as often as reads; faults land on these.
AK_ROUTES = 2 * [("POST", r"/core/groups/$"), ("PATCH", r"/core/groups/[^/]+/$"), ("DELETE", r"/core/groups/[^/]+/$"),
                 ("POST", r"/sync/object/$"), ("PATCH", r"/providers/scim/\d+/$")] + [
    ("GET", r"/core/groups/"), ("GET", r"/providers/scim/\d+/$"), ("GET", r"/providers/scim_groups/"),
    ("GET", r"/providers/scim_users/"), ("GET", r"/core/users/"), ("*", r"."),
]
# Cloudflare: the IAM API vgmigrate writes and reads, and the SCIM endpoint Authentik pushes into.
CF_ROUTES = [("PUT", r"/iam/user_groups/[^/]+$"), ("GET", r"/iam/user_groups"), ("GET", r"/members"), ("*", r"/iam/")]
CF_SCIM_ROUTES = [("POST", r"/scim/v2/Groups$"), ("PATCH", r"/scim/v2/Groups/"), ("GET", r"/scim/v2/Groups")]
KINDS = ("5xx", "lose", "timeout", "429")
FAULT_SEEDS = 4 if settings().max_examples < 100 else 40  # the long profile runs ten times as many


class QuickTime:
    """A clock that jumps forward when slept on: retries, backoff and Retry-After waits cost nothing."""

    def __init__(self):
        self.skipped = 0.0

    def __call__(self):
        return time.monotonic() + self.skipped

    def sleep(self, seconds):
        self.skipped += seconds


def fast_client(cf, ak):
    clock = QuickTime()

    def fast():
        return dict(timeout=5.0, sleep=clock.sleep, limiter=RateLimiter(limit=None, clock=clock, sleep=clock.sleep))

    client = CloudflareClient.connect(cf.base_url, cf.token, cf.account_id, **fast())
    client.idp = AuthentikClient.connect(ak.base_url, ak.token, sync_timeout=3.0, **fast())
    return client


def sow(rnd, cf, ak, n):
    """Inject n faults on random routes of both sides; each fires on its route's next request(s)."""
    for _ in range(n):
        target, routes = (ak, AK_ROUTES) if rnd.random() < 0.6 else (cf, CF_ROUTES + CF_SCIM_ROUTES)
        method, path = rnd.choice(routes)
        target.inject(method, path, rnd.choice(KINDS), times=rnd.randint(1, 2))


def until_done(attempt, rnd, cf, ak, limit=25):
    """What an operator does: run the command again until it finishes, with new faults each time
    for the first half of the tries."""
    for n in range(limit):
        if n < limit // 2:
            sow(rnd, cf, ak, rnd.randint(1, 4))
        try:
            if attempt():
                return n + 1
        except VgmigrateError:
            pass
    raise AssertionError(f"{attempt.__name__} did not finish in {limit} runs")


def operator_runs(cf, ak, db, plan, rnd):
    """apply, verify, cutover and rollback under faults, each re-run until it finishes. Returns how
    many runs each took."""

    def apply():
        return apply_plan(fast_client(cf, ak), Inventory(db), plan, parallel=4).status in ("done", "nothing_to_do")

    def verify():
        from migrate.verify import verify_run

        return verify_run(fast_client(cf, ak), Inventory(db))[1] == []

    def cutover():
        client, inventory = fast_client(cf, ak), Inventory(db)
        run = apply_run(inventory)
        if any(r["plan_id"] == plan["plan_id"] and r["status"] == "done" for r in inventory.runs("cutover")):
            return True
        work = prepare(client, inventory, run)
        return not work.steps or Cutover(client, inventory, work.steps, work.checks, work.plan["plan_id"]).run().status == "done"

    def rollback():
        return rollback_run(fast_client(cf, ak), Inventory(db)).status in ("rolled_back", "nothing_to_do")

    return {f.__name__: until_done(f, rnd, cf, ak) for f in (apply, verify, cutover, rollback)}


@pytest.fixture
def quick_polls(monkeypatch):
    monkeypatch.setattr("migrate.waiting.POLL", (0.01, 0.05))


@pytest.mark.parametrize("seed", range(1, 1 + FAULT_SEEDS))
def test_faults_on_both_sides_end_exactly_as_before(tmp_path, seed, quick_polls):
    rnd = random.Random(seed)
    account = generate_seed(groups=6, members=30, random_seed=seed)
    db, out = tmp_path / "v.db", tmp_path / "plan.json"
    scope, version = SCOPES[seed % 2], VERSIONS[seed % len(VERSIONS)]
    with Sandbox(seed=account, rate_limit=None, timeout_seconds=0.05) as cf, \
            AuthentikSandbox(cloudflare=cf, scope=scope, version=version, timeout_seconds=0.05) as ak:
        start = everything(cf, ak)
        plan, _ = plan_idp(cf, ak, db, out)
        plan = planfile.read(out)
        assert plan["steps"]
        watch = AccessWatch(cf, plan)
        try:
            runs = operator_runs(cf, ak, db, plan, rnd)
        finally:
            watch.stop()
        faults = sum(1 for c in ak.calls + cf.calls if c[2] is None or c[2] == 429 or c[2] >= 500)
        print(f"seed {seed} ({scope}, {version}): runs {runs}, {faults} faults")
        assert faults > 0
        assert watch.violations == [], "access changed beyond the plan:\n" + "\n".join(watch.violations[:10])
        end = everything(cf, ak)
        assert end == start, "rollback did not restore everything:\n" + diff(start, end)


# --- what the properties found, pinned down by hand -----------------------------------------------


def test_cutover_counts_a_super_administrator_by_policy(tmp_path):
    """root holds Super Administrator by a direct policy on the whole account, in no virtual group:
    plan finds a break glass (no --allow-no-break-glass needed), so the cutover must not refuse
    for want of one."""
    rg = tag(0x100)
    ada = {"id": tag(0x3000), "email": "ada@example.com", "status": "accepted",
           "user": {"id": tag(0x4000), "email": "ada@example.com"}, "roles": [ROLE_OF["DNS"]], "policies": []}
    root = {"id": tag(0x3001), "email": "root@example.com", "status": "accepted",
            "user": {"id": tag(0x4001), "email": "root@example.com"}, "roles": [],
            "policies": [{"access": "allow", "permission_groups": [{"id": ACCOUNT_PGS["Super Administrator - All Privileges"]}],
                          "resource_groups": [{"id": rg}]}]}
    seed = account(
        members=[ada, root],
        resource_groups=[{"id": rg, "name": "everything", "scope": {"key": KEY, "objects": [{"key": "*"}]}}],
        scim_groups=[{"id": "cloudflare-v1-dns", "displayName": f"CF-{ACCT} - DNS", "system": True, "role": ROLE_OF["DNS"]}],
        scim_users=[{"id": tag(0x4000), "userName": "ada@example.com", "active": True, "groups": ["cloudflare-v1-dns"]}],
    )
    db, out = tmp_path / "v.db", tmp_path / "plan.json"
    with Sandbox(seed=seed, rate_limit=None) as cf, AuthentikSandbox(cloudflare=cf) as ak:
        plan, break_glass = plan_idp(cf, ak, db, out)
        assert break_glass == [] and plan["steps"]  # plan counts root as the break glass
        ok(vg(cf, ak, db, "apply", out, "--yes"), "apply")
        ok(vg(cf, ak, db, "verify"), "verify")
        ok(vg(cf, ak, db, "cutover", "--yes"), "cutover")  # refuses: "would leave no accepted Super Administrator outside SCIM"


def test_rollback_of_a_cutover_whose_push_failed_restores_the_roles(tmp_path):
    """Cloudflare answers one SCIM PATCH (Authentik putting members back into a CF- group) with a
    502 during the rollback. Authentik logs a sync warning; the operator re-runs rollback as long
    as it says it is not finished. The members' legacy roles must be back in the end."""
    from migrate.sandbox.seeds import demo_seed

    db, out = tmp_path / "v.db", tmp_path / "plan.json"
    with Sandbox(seed=demo_seed(), rate_limit=None) as cf, AuthentikSandbox(cloudflare=cf) as ak:
        start = roles(cf)
        plan_idp(cf, ak, db, out)
        ok(vg(cf, ak, db, "apply", out, "--yes"), "apply")
        ok(vg(cf, ak, db, "cutover", "--yes"), "cutover")
        assert roles(cf) != start  # the cutover took legacy roles away
        cf.inject("PATCH", r"/scim/v2/Groups/cloudflare-v1", "5xx")
        for _ in range(3):
            if vg(cf, ak, db, "rollback", "--yes").exit_code == 0:
                break
        lost = {m: sorted(start[m] - r) for m, r in roles(cf).items() if start[m] - r}
        assert not lost, f"rollback finished, and these members' legacy roles are gone: {lost}"


def done_steps(db):
    with sqlite3.connect(db) as conn:
        try:
            return conn.execute("select count(*) from actions where status = 'done'").fetchone()[0]
        except sqlite3.OperationalError:
            return 0


def test_kill_9_of_an_idp_apply_then_resume_cutover_and_rollback(tmp_path):
    """`vgmigrate apply` of an idp plan, in its own process, killed with SIGKILL mid-run: the next
    apply takes over, nothing is made twice in Authentik, and cutover and rollback end exactly
    where the account started."""
    account = generate_seed(groups=6, members=30, random_seed=7)
    db, out = tmp_path / "v.db", tmp_path / "plan.json"
    with Sandbox(seed=account, rate_limit=None) as cf, AuthentikSandbox(cloudflare=cf, latency_ms=40) as ak:
        start = everything(cf, ak)
        plan, _ = plan_idp(cf, ak, db, out)
        watch = AccessWatch(cf, plan)
        try:
            child = subprocess.Popen([sys.executable, "-m", "migrate", "apply", str(out), "--yes", "--parallel", "1"], cwd=REPO,
                                     env={**os.environ, **env_for(cf, ak, db)}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 30
            while done_steps(db) < 3 and time.monotonic() < deadline and child.poll() is None:
                time.sleep(0.01)
            child.send_signal(signal.SIGKILL)
            child.wait()
            killed_at = done_steps(db)
            assert 3 <= killed_at < len(plan["steps"]), f"the kill should land mid-run ({killed_at} of {len(plan['steps'])} done)"
            # The request in flight when the process died may land after the next apply looked
            # for its group: that apply's create is refused (the name is taken by it) and found ours.
            ok(vg(cf, ak, db, "apply", out, "--yes"), "apply after the kill")
            made = [c for c in ak.calls if c[0] == "POST" and c[1].endswith("/core/groups/") and c[2] == 201]
            assert len(made) == len(plan["groups"]), "a group was created twice in Authentik"
            print(f"killed after {killed_at} of {len(plan['steps'])} steps")
            ok(vg(cf, ak, db, "verify"), "verify")
            ok(vg(cf, ak, db, "cutover", "--yes"), "cutover")
            ok(vg(cf, ak, db, "rollback", "--yes"), "rollback")
        finally:
            watch.stop()
        assert watch.violations == [], "access changed beyond the plan:\n" + "\n".join(watch.violations[:10])
        end = everything(cf, ak)
        assert end == start, "rollback did not restore everything:\n" + diff(start, end)


def test_a_create_that_lands_late_is_recognised_as_ours(tmp_path, monkeypatch):
    """The create of a killed (or timed-out) apply reaches Authentik only after the next apply
    looked for it and found nothing: that apply's own create is refused (the name is taken, by
    its own group). Running apply again must finish, and rollback must leave Authentik as it was."""
    import requests

    from migrate.steps import CreateIdpGroup

    db, out = tmp_path / "v.db", tmp_path / "plan.json"
    with Sandbox(seed=generate_seed(groups=3, members=12, random_seed=5), rate_limit=None) as cf, \
            AuthentikSandbox(cloudflare=cf, timeout_seconds=0.05) as ak:
        start = everything(cf, ak)
        plan, _ = plan_idp(cf, ak, db, out)
        first = next(s for s in plan["steps"] if s["kind"] == "create_idp_group")
        ak.inject("POST", r"/core/groups/$", "timeout")  # sent, held, dropped: not made (yet)
        assert vg(cf, ak, db, "apply", out, "--yes").exit_code == 1
        reconcile = CreateIdpGroup.reconcile

        def late(self, client, request, live, fresh):
            found = reconcile(self, client, request, live, fresh)
            if found is None and request["name"] == first["request"]["name"]:  # the old request lands now
                requests.post(f"{ak.base_url}/core/groups/", json={k: request[k] for k in ("name", "users", "attributes")},
                              headers={"Authorization": f"Bearer {ak.token}"}).raise_for_status()
            return found

        monkeypatch.setattr(CreateIdpGroup, "reconcile", late)
        runs = [vg(cf, ak, db, "apply", out, "--yes")]
        monkeypatch.setattr(CreateIdpGroup, "reconcile", reconcile)
        while runs[-1].exit_code != 0 and len(runs) < 4:
            runs.append(vg(cf, ak, db, "apply", out, "--yes"))
        assert runs[-1].exit_code == 0, "apply never finished:\n" + "\n".join(r.output.strip().splitlines()[-1] for r in runs)
        ok(vg(cf, ak, db, "rollback", "--yes"), "rollback")
        assert everything(cf, ak) == start
