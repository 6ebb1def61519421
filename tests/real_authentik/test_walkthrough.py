"""The README's IdP walkthrough, command by command through the real CLI, against a real Authentik
and the Cloudflare sandbox seeded the way Authentik built the account (world.py).

Checked: every command exits 0; right after apply, cutover and rollback end, both sides are
exactly as planned; nobody loses access and nobody gains an unplanned permission at any moment
(a sampler reads the sandbox every 100 ms, and AccessWatch checks after every write it accepts)."""

import json
import os
import re
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path

from migrate.sandbox.watch import AccessWatch

from . import world as lane

ROOT = Path(__file__).resolve().parents[2]
FINDINGS = []  # (command, seconds) per step, printed at the end for the findings note


def walkthrough_commands():
    """The README's <!-- idp-walkthrough --> block: [(argv after vgmigrate, stdout file or None)]."""
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- idp-walkthrough -->\s*```sh\n(.*?)```", readme, re.S).group(1)
    commands = []
    for line in block.splitlines():
        words = shlex.split(line, comments=True)
        if not words:
            continue
        assert words[0] == "vgmigrate", line
        out = None
        if ">" in words:
            at = words.index(">")
            out, words = words[at + 1], words[:at]
        commands.append((words[1:], out))
    return commands


class Sampler(threading.Thread):
    """Reads everyone's effective access in the sandbox every `interval` s while commands run and
    records who has less than before, or more than the plan allows (`allowed`, set after plan)."""

    def __init__(self, cf, interval=0.1):
        super().__init__(daemon=True, name="access-sampler")
        self.cf, self.interval = cf, interval
        self.before = cf.state.effective_access()
        self.allowed = {}  # member id -> permission group ids the plan may grant
        self.command = "(seeded)"
        self.samples = 0
        self.violations = []
        self._halt = threading.Event()

    def run(self):
        while not self._halt.is_set():
            now = self.cf.state.effective_access()
            for member_id, before in self.before.items():
                after = now.get(member_id, frozenset())
                if before - after:
                    self.violations.append(f"{self.command}: {self._who(member_id)} lost {sorted(before - after)}")
                gained = {pg for pg, _ in after - before if pg not in self.allowed.get(member_id, ())}
                if gained:
                    self.violations.append(f"{self.command}: {self._who(member_id)} gained {sorted(gained)}")
            for member_id in set(now) - set(self.before):
                if now[member_id]:
                    self.violations.append(f"{self.command}: new member {self._who(member_id)} has {sorted(now[member_id])}")
            self.samples += 1
            self._halt.wait(self.interval)

    def _who(self, member_id):
        member = self.cf.state.members.get(member_id)
        return member["email"] if member else member_id

    def stop(self):
        self._halt.set()
        self.join(timeout=5)


def run_cli(args, env, cwd, out=None, timeout=600):
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "migrate", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    took = time.monotonic() - started
    FINDINGS.append((" ".join(args), round(took, 1), result.returncode))
    if out:
        (Path(cwd) / out).write_text(result.stdout)
    return result, took


def authentik_members(ak):
    """{group name: set of usernames} for every Authentik group the lane cares about."""
    return {g["name"]: {u["username"] for u in g["users_obj"] or []} for g in ak.groups() if g["name"] != "authentik Admins"}


def cloudflare_groups(cf):
    """{user group name: (scim_managed, member emails, {(access, permission group ids, resource group ids)})}."""
    with cf.state.lock:
        state = cf.state
        return {
            g["name"]: (g["scim_managed"], {state.members[m]["email"] for m in g["members"]},
                        {(p["access"], tuple(p["permission_groups"]), tuple(p["resource_groups"])) for p in g["policies"]})
            for g in state.user_groups.values()
        }


def planned_groups(plan):
    return {g["name"]: g for g in plan["groups"] if g["action"] != "conflict"}


def settle(check, *args, patience=90.0):
    """None if `check(*args)` passes right away; else (its first failure, seconds until it passed
    when polled for `patience` more seconds, or None if it never did): what failed, and how late
    Cloudflare (or Authentik) caught up."""
    try:
        check(*args)
        return None
    except AssertionError as err:
        first = str(err).split("\n")[0]
    started = time.monotonic()
    while time.monotonic() - started < patience:
        time.sleep(0.5)
        try:
            check(*args)
            return first, round(time.monotonic() - started, 1)
        except AssertionError:
            pass
    return first, None


def test_the_readme_idp_walkthrough_end_to_end(authentik, authentik_settings, tmp_path):
    ak = authentik
    world = lane.build(ak)
    cf = world.cf
    env = {**os.environ, **world.env(*authentik_settings, tmp_path / "vgmigrate.db")}
    before_roles = lane.roles_by_email(cf)
    before_authentik = authentik_members(ak)
    before_groups = cloudflare_groups(cf)
    sampler = Sampler(cf)
    sampler.start()
    watch = None
    plan = None
    problems = []  # every failed check, with how late the state caught up (the walkthrough goes on)
    checks = {
        "apply": lambda: settle(check_after_apply, ak, cf, plan, world, before_roles, before_authentik, before_groups),
        "cutover": lambda: settle(check_after_cutover, ak, cf, plan, world, before_roles, before_authentik, before_groups),
        "rollback": lambda: settle(check_after_rollback, ak, cf, before_roles, before_authentik, before_groups),
    }
    try:
        for args, out in walkthrough_commands():
            sampler.command = args[0]
            if args[0] == "apply":
                plan = json.loads((tmp_path / args[1]).read_text())
                watch = AccessWatch(cf, plan)  # after every write from here on (stopped in finally)
            result, took = run_cli(args, env, tmp_path, out)
            if result.returncode != 0:
                problems.append(f"vgmigrate {' '.join(args)} exited {result.returncode} after {took:.1f} s: "
                                f"{(result.stderr.strip().splitlines() or [''])[-1]}")
                break
            if args[0] == "plan":
                plan = json.loads((tmp_path / args[args.index("--out") + 1]).read_text())
                for group in planned_groups(plan).values():
                    for member in group["members"]:
                        sampler.allowed.setdefault(member["id"], set()).add(group["permission_group"]["id"])
                # The seed is the whole picture: one new group per CF- group, with all its members.
                assert {v["name"] for g in plan["groups"] for v in g["virtual_groups"]} == set(world.group_names.values())
            elif args[0] in checks:
                found = checks[args[0]]()
                if found:
                    late = f"caught up {found[1]} s later" if found[1] is not None else "still so 90 s later"
                    problems.append(f"when `{args[0]}` ended: {found[0]} ({late})")
    finally:
        sampler.stop()
        if watch:
            watch.stop()
        cf.stop()
        print("\nwalkthrough (command, seconds, exit):", FINDINGS, "samples:", sampler.samples, "seed:", world.timings, *problems, *sampler.violations[:10], *(watch.violations[:10] if watch else []), sep="\n")
    assert sampler.samples > 20 and watch is not None
    access = [f"sampled: {v}" for v in sampler.violations[:10]] + [f"after a write: {v}" for v in watch.violations[:10]]
    assert problems + access == [], "\n".join(problems + access)


def check_after_apply(ak, cf, plan, world, before_roles, before_authentik, before_groups):
    planned = planned_groups(plan)
    members = authentik_members(ak)
    for name, group in planned.items():
        assert members.get(name) == {m["email"] for m in group["members"]}, f"Authentik group {name!r}"
    for name, users in before_authentik.items():
        assert members[name] == users, f"apply changed Authentik group {name!r}"
    groups = cloudflare_groups(cf)
    rg = plan["resource_group"]["id"] if plan.get("resource_group") and plan["resource_group"].get("id") else None
    for name, group in planned.items():
        assert name in groups, f"no User Group {name!r} in Cloudflare after apply"
        managed, emails, policies = groups[name]
        assert managed and emails == {m["email"] for m in group["members"]}, f"User Group {name!r}"
        assert len(policies) == 1, f"User Group {name!r} policies {policies}"
        access, pgs, rgs = next(iter(policies))
        assert access == "allow" and pgs == (group["permission_group"]["id"],), f"User Group {name!r} policy"
        assert rg is None or rgs == (rg,), f"User Group {name!r} resource groups"
    assert set(groups) == set(before_groups) | set(planned)
    assert lane.roles_by_email(cf) == before_roles, "apply changed legacy roles"


def check_after_cutover(ak, cf, plan, world, before_roles, before_authentik, before_groups):
    planned = planned_groups(plan)
    members = authentik_members(ak)
    migrated = {m["email"] for g in planned.values() for m in g["members"]}
    for name in world.group_names.values():
        assert not (members.get(name, set()) & migrated), f"cutover left migrated members in Authentik group {name!r}"
    for name, group in planned.items():
        assert members.get(name) == {m["email"] for m in group["members"]}
    roles = lane.roles_by_email(cf)
    still = {e: sorted(r) for e, r in roles.items() if e in lane.PEOPLE and r}
    assert still == {}, f"legacy roles still in Cloudflare when cutover ended: {still}"
    assert roles[lane.BREAK_GLASS] == before_roles[lane.BREAK_GLASS], "the break-glass admin's direct role changed"
    assert set(cloudflare_groups(cf)) == set(before_groups) | set(planned)


def check_after_rollback(ak, cf, before_roles, before_authentik, before_groups):
    members = authentik_members(ak)
    assert members == before_authentik, "Authentik groups after rollback differ from before the run"
    roles = lane.roles_by_email(cf)
    differ = {e: (sorted(before_roles.get(e, ())), sorted(roles.get(e, ()))) for e in set(roles) | set(before_roles)
              if roles.get(e, set()) != before_roles.get(e, set())}
    assert differ == {}, f"legacy roles when rollback ended (before, now): {differ}"
    assert cloudflare_groups(cf) == before_groups, "Cloudflare User Groups after rollback differ from before the run"

