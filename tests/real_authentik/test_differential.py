"""Differential tests: the same scenarios against the Authentik emulator (version 2025.12.4) and
the real 2025.12.4 server, each pushing into its own Cloudflare sandbox; the SCIM requests each
sends (method, path, body, ids and uuids normalised) and the end states, compared step by step.

Order: requests are compared as multisets, since authentik promises no order between tasks; within
one task it does (a group's POST before the PATCH adding its members), and that is checked apart.
No difference is left in what is sent; how often it is sent differs, and the emulator's docstring
says why (`migrate/sandbox/authentik/__init__.py`, "Checked against a real 2025.12.4")."""

import json
import time
from collections import Counter

import pytest

from migrate.sandbox import Sandbox
from migrate.sandbox.authentik import AuthentikSandbox
from migrate.sandbox.seeds import unprovisioned_seed

from . import world as lane
from .ak import GROUP_MODEL, PREFIX, Authentik, wait_for

PEOPLE = {e: r for e, r in lane.PEOPLE.items() if e != "ivan.ivanova@acme-corp.example"}
TEAM, RENAMED, TAKEN = f"{PREFIX} Diff Team", f"{PREFIX} Diff Team Renamed", f"{PREFIX} Taken"
BEN, CHLOE, DANA, HANA = "ben.brandt@acme-corp.example", "chloe.castillo@acme-corp.example", "dana.whitfield@acme-corp.example", "hana.hayashi@acme-corp.example"

# Requests the real server sends only in some runs, explained in the emulator's docstring:
# (step, method, status). A group's DELETE a second time, answered 404 (one run in three).
SOMETIMES_REAL = {("delete", "DELETE", 404)}


class Labels:
    """Cloudflare SCIM ids -> stable labels ("user:<email>", "group:<name>"), remembered across
    deletes, so both runs' requests read the same."""

    def __init__(self, cf):
        self.cf, self.known = cf, {}

    def refresh(self):
        with self.cf.state.lock:
            state = self.cf.state
            for user in state.scim_users.values():
                self.known[user["id"]] = f"user:{user['userName'].casefold()}"
            for gid, group in state.scim_groups.items():
                self.known[gid] = f"group:{group['displayName'].replace(self.cf.account_id, '<acct>')}"
            for gid, group in state.user_groups.items():
                self.known[gid] = f"group:{group['name']}"

    def sub(self, text):
        for raw, label in self.known.items():
            text = text.replace(raw, label)
        return text.replace(self.cf.account_id, "<acct>")


def normalise(request, labels):
    body = request["body"]
    if isinstance(body, dict):
        body = dict(body)
        if "externalId" in body:
            body["externalId"] = "<authentik uuid>" if "Groups" in request["path"] or "members" in body or "displayName" in body else "<authentik uid>"
        if isinstance(body.get("Operations"), list):
            ops = []
            for op in body["Operations"]:
                op = dict(op)
                if isinstance(op.get("value"), dict) and "externalId" in op["value"]:
                    op["value"] = dict(op["value"], externalId="<authentik uuid>")
                ops.append(op)
            body["Operations"] = sorted(ops, key=lambda o: json.dumps(o, sort_keys=True))
    text = json.dumps({"method": request["method"], "path": request["path"], "query": request["query"], "body": body,
                       "status": request["status"]}, sort_keys=True)
    return labels.sub(text)


def end_state(cf):
    """What Cloudflare holds: SCIM users, system groups with their members, User Groups with theirs,
    and the legacy roles of the lane's people."""
    with cf.state.lock:
        state = cf.state
        users = {u["userName"].casefold(): u["active"] for u in state.scim_users.values()}
        system = {g["displayName"].replace(cf.account_id, "<acct>"): sorted(u["userName"].casefold() for u in state.scim_users.values() if gid in u["groups"])
                  for gid, g in state.scim_groups.items()}
        groups = {g["name"]: (g["scim_managed"], sorted(state.members[m]["email"] for m in g["members"])) for g in state.user_groups.values()}
    return {"users": users, "system": system, "user_groups": groups, "roles": {e: sorted(r) for e, r in lane.roles_by_email(cf).items() if e in PEOPLE}}


class Runner:
    """One side: an Authentik (real or emulated) and its Cloudflare sandbox; runs the steps."""

    def __init__(self, ak, cf, quiet, drain=None):
        self.ak, self.cf, self.quiet, self.drain = ak, cf, quiet, drain
        self.labels = Labels(cf)
        self.steps = []  # (name, Counter of normalised requests, ordered pairs seen, end state, seconds to settle)

    def step(self, name, act, done=lambda state, requests: True, timeout=120.0):
        self.labels.refresh()
        self.cf.reset_calls()
        started = time.monotonic()
        result = act()

        def settled():
            if self.drain:
                self.drain()
            requests = self.cf.scim_requests
            last = requests[-1]["at"] if requests else started
            return done(end_state(self.cf), requests) and time.monotonic() - max(last, started) >= self.quiet

        wait_for(f"step {name!r} to reach Cloudflare", settled, timeout=timeout, interval=0.2)
        requests = self.cf.scim_requests
        took = round((requests[-1]["at"] - started) if requests else 0.0, 1)
        self.labels.refresh()
        normalised = [normalise(r, self.labels) for r in requests]
        self.steps.append((name, Counter(normalised), _group_order(normalised), end_state(self.cf), took))
        return result


def _group_order(normalised):
    """Within one task authentik promises an order: a group's POST before the PATCH adding its members."""
    posted, wrong = {}, []
    for i, text in enumerate(normalised):
        request = json.loads(text)
        if request["method"] == "POST" and request["path"] == "/Groups" and isinstance(request["body"], dict):
            posted.setdefault("/Groups/group:" + str(request["body"].get("displayName")), i)
    for i, text in enumerate(normalised):
        request = json.loads(text)
        if request["method"] == "PATCH" and request["path"] in posted and i < posted[request["path"]]:
            wrong.append(text)
    return wrong


def sent(method, path_start, status=None):
    """A `done` test: some request so far matches."""
    return lambda state, requests: any(r["method"] == method and r["path"].startswith(path_start) and status in (None, r["status"]) for r in requests)


def run_scenarios(runner, world):
    ak, cf = runner.ak, runner.cf
    users = world.users
    admin = world.groups["Administrator"]
    has = lambda name, members: lambda s, _: s["user_groups"].get(name, (None, None))[1] == sorted(members)  # noqa: E731
    team = runner.step("create with members", lambda: ak.create_group(TEAM, [users[BEN], users[CHLOE]]), has(TEAM, [BEN, CHLOE]))
    runner.step("add a member", lambda: ak.add_user(team["pk"], users[DANA]), has(TEAM, [BEN, CHLOE, DANA]))
    runner.step("remove a member", lambda: ak.remove_user(team["pk"], users[BEN]), has(TEAM, [CHLOE, DANA]))
    runner.step("add to a CF- group", lambda: ak.add_user(admin["pk"], users[HANA]), lambda s, _: "Administrator" in s["roles"][HANA])
    runner.step("remove from a CF- group", lambda: ak.remove_user(admin["pk"], users[HANA]), lambda s, _: "Administrator" not in s["roles"][HANA])
    runner.step("rename", lambda: ak.rename_group(team["pk"], RENAMED), has(RENAMED, [CHLOE, DANA]))
    runner.step("delete", lambda: ak.delete_group(team["pk"]), lambda s, _: RENAMED not in s["user_groups"])
    # A full sync reads every linked group back (GET /Groups/{id}) to compare members.
    runner.step("full sync", lambda: ak.full_sync(world.provider_pk), sent("GET", "/Groups/"), timeout=120)
    status = runner.step("single-object sync", lambda: ak.sync_object(world.provider_pk, GROUP_MODEL, admin["pk"])[0])
    # Last: the real server retries the failed create 5 times over ~8 minutes (15 s backoff, doubling),
    # and a full sync meanwhile would stop its group page at this group.
    with cf.state.lock:  # a User Group some IdP pushed before: the name is taken in Cloudflare's SCIM
        cf.state.create_user_group(TAKEN, [], scim_managed=True)
    runner.step("409: the group exists in Cloudflare", lambda: ak.create_group(TAKEN, [users[BEN]]), sent("POST", "/Groups", 409), timeout=60)
    return status


def side(ak, drain, quiet):
    cf = Sandbox(seed=unprovisioned_seed(), rate_limit=None, before_end_of_life=True).start()
    try:
        world = lane._build(ak, cf, PEOPLE, 180.0)
        cf.record_scim = True
        runner = Runner(ak, cf, quiet, drain)
        status = run_scenarios(runner, world)
        return runner.steps, status
    finally:
        cf.stop()


def compare(real, emulated):
    """Differences in the distinct requests sent, the end states and the promised order. Counts
    are not compared: a failed push is retried on authentik's clock (15 s, doubling, 5 times) and
    on the emulator's compressed one, and signal tasks race (a create's member PATCH is sent once
    or twice), so how many times one request is seen in a window varies from run to run."""
    differences = []
    for (name, real_requests, real_order, real_state, _), (_, emu_requests, emu_order, emu_state, _) in zip(real, emulated):
        for text in sorted(set(real_requests) - set(emu_requests)):
            request = json.loads(text)
            if (name, request["method"], request["status"]) not in SOMETIMES_REAL:
                differences.append(f"{name}: only the real server sent {text}")
        for text in sorted(set(emu_requests) - set(real_requests)):
            differences.append(f"{name}: only the emulator sent {text}")
        if real_state != emu_state:
            differences.append(f"{name}: end states differ: real {real_state} emulator {emu_state}")
        differences += [f"{name}: out of order in {who}: {t}" for who, wrong in (("real", real_order), ("emulator", emu_order)) for t in wrong]
    return differences


def test_the_emulator_sends_what_the_real_server_sends(authentik, authentik_settings):
    real, real_status = side(authentik, None, quiet=4.0)
    with AuthentikSandbox(cloudflare=None, version="2025.12.4") as emu:
        client = Authentik(emu.base_url, emu.token)
        emulated, emu_status = side(client, lambda: emu.worker.drain(), quiet=0.5)
    print("\nreal server, seconds from the Authentik change to its last SCIM request per step:",
          [(name, took, sum(c.values())) for name, c, _, _, took in real])
    for (name, real_requests, *_), (_, emu_requests, *_) in zip(real, emulated):
        print(f"\n## {name}\nreal:", *sorted(real_requests.elements()), "emulator:", *sorted(emu_requests.elements()), sep="\n  ")
    print("single-object sync answered", real_status, "(real),", emu_status, "(emulator)")
    differences = compare(real, emulated)
    assert differences == [], "\n".join(differences)
