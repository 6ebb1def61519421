"""Rehearse a plan: apply, verify and roll it back on an in-process replica of the account, built
from the inventory the plan was made from. No request reaches the real account."""

import sqlite3
import tempfile
from pathlib import Path

from .cloudflare import CloudflareClient
from .executor import apply_plan
from .http import RateLimiter
from .progress import about
from .codec import dumps, utcnow
from .inventory import Inventory, member_as_listed
from .iam import write_policies
from .rollback import rollback_run
from .sandbox import Sandbox
from .verify import verify_run
from .runs import DONE, NOTHING_TO_DO, UNDONE


def seed_from_scan(data):
    """The sandbox seed that reproduces a scanned account (ids kept, so the plan applies as is).

    User Groups keep the members the scan read and the IdP's lock: a group the IdP manages is as
    locked in the replica as in the account, so a plan that would write its members fails here too.
    """
    listed_roles = {r["id"]: r["raw"] for r in data.get("roles", ())}  # none in scans made before the roles table
    roles = {}
    members = []
    for m in data["members"]:
        raw = member_as_listed(m["raw"], listed_roles)
        for role in raw.get("roles") or []:
            roles.setdefault(role["id"], {"id": role["id"], "name": role.get("name", role["id"]), "description": role.get("description", ""), "permissions": role.get("permissions") or {}})
        members.append({**raw, "email": m["email"], "roles": [r["id"] for r in raw.get("roles") or []], "policies": write_policies(raw.get("policies"))})
    user_tags = {m["email"]: (m["raw"].get("user") or {}).get("id") for m in data["members"]}
    group_members = {}
    for link in data["user_group_members"]:
        group_members.setdefault(link["user_group_id"], []).append(link["member_id"])
    scim_groups = [{"id": vg["id"], "displayName": vg["name"], "system": True} for vg in data["virtual_groups"]]
    scim_users = {}
    for link in data["virtual_group_members"]:
        tag = user_tags.get(link["email"]) or f"rehearsal-{link['email']}"
        scim_users.setdefault(tag, {"id": tag, "userName": link["email"], "active": True, "groups": []})["groups"].append(link["virtual_group_id"])
    return {
        "account": data["accounts"][0]["raw"],
        "permission_groups": [pg["raw"] for pg in data["permission_groups"]],
        "roles": list(roles.values()),
        "members": members,
        "resource_groups": [rg["raw"] for rg in data["resource_groups"]],
        "user_groups": [
            {**g["raw"], "policies": write_policies(g["raw"].get("policies")), "members": group_members.get(g["id"], []),
             "scim_managed": bool(g["scim_managed"])}
            for g in data["user_groups"]
        ],
        "scim_groups": scim_groups,
        "scim_users": list(scim_users.values()),
    }


def real_apply_estimate(calls):
    """How long the real apply's calls take at Cloudflare's rate limit, in a sentence (the replica
    has none: its own time says nothing of the account's)."""
    limiter = RateLimiter(burst=RateLimiter.DEFAULT_BURST)  # what `apply` paces itself with
    seconds = limiter.seconds_for(calls)
    if seconds < 0.5:
        return (f"the real apply makes {calls} API calls, within the {limiter.burst} sent at once: "
                "the rate limit will not slow it")
    return (f"the real apply makes {calls:,} API calls: about {about(seconds)} at the API rate limit "
            f"({limiter.limit} requests / {limiter.period / 60:g} min), more if other clients share the token")


def rehearse(inventory, plan, parallel=4, bar=None):
    """Returns a summary dict and records it in the inventory (the approval report shows it).

    bar(label, total, unit): a progress bar (a StepProgress) for the apply and the rollback."""
    bar = bar or (lambda label, total, unit: _NoBar())

    seed = seed_from_scan(inventory.load_scan(plan["scan"]["id"]))
    with tempfile.TemporaryDirectory(prefix="vgmigrate-rehearsal-") as tmp, Sandbox(seed=seed, rate_limit=None) as sb:
        # A copy of the inventory, so the rehearsal's journal never mixes with the real one.
        replica_path = Path(tmp) / "rehearsal.db"
        with sqlite3.connect(replica_path) as replica:
            inventory.db.conn.backup(replica)
        replica = Inventory(replica_path)
        client = CloudflareClient.connect(sb.base_url, sb.token, sb.account_id, parallel=parallel, limiter=RateLimiter(limit=None))
        before = sb.state.snapshot()
        with bar("rehearsing apply", len(plan["steps"]), "steps") as steps:
            applied = apply_plan(client, replica, plan, parallel=parallel, progress=lambda step, outcome: steps.update(1))
        _, diffs, _ = verify_run(client, replica, applied.run_id) if applied.run_id else (None, [], None)
        undone = applied  # nothing applied: nothing to undo
        if applied.run_id:
            with bar("rehearsing rollback", replica.live_actions(applied.run_id), "journal actions") as actions:
                undone = rollback_run(client, replica, applied.run_id, progress=lambda action, outcome: actions.update(1))
        restored = iam_state(sb.state.snapshot()) == iam_state(before)
        replica.close()
    summary = {
        "plan_id": plan["plan_id"],
        "at": utcnow(),
        "apply": applied.status,
        "apply_calls": applied.calls,
        "differences": len(diffs),
        "rollback": undone.status,
        "restored": restored,
        "passed": applied.status in (DONE, NOTHING_TO_DO) and not diffs and undone.status in (UNDONE, NOTHING_TO_DO) and restored,
    }
    inventory.save_rehearsal({**summary, "summary": dumps(summary)})
    return summary


def iam_state(snapshot):
    """What a migration may change in a sandbox snapshot: User Groups and resource groups."""
    return (
        sorted((g["name"], dumps(g["policies"]), sorted(g["members"])) for g in snapshot["user_groups"]),
        sorted(r["id"] for r in snapshot["resource_groups"]),
    )


class _NoBar:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def update(self, n=1):
        pass
