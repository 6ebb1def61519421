"""Live state vs the applied plan, and access parity member by member."""

from . import iam
from .cloudflare import run_parallel
from .errors import VgmigrateError
from .legacy import legacy_left
from .runs import apply_run
from .steps import kinds_where, plan_group_of, removals_of


def compare(plan, group_ids, live_groups, live_members, rg_ids, memberships):
    """Pure: every difference between what the plan promised and what is live.

    group_ids: plan group step -> live id the run created or adopted (None if never created).
    live_members: group id -> set of member ids. rg_ids: the live account-wide resource groups.
    memberships: (member id, email, pg id, pg name) granted by the migrated virtual groups.
    A member in a group who is neither planned for it nor listed as gaining with an adopted group
    gains a role the approver never saw: that is a difference too.
    """
    diffs = []
    by_id = {g["id"]: g for g in live_groups}
    grantors = {}  # member id -> set of pg ids granted through the plan's live groups
    for group in plan["groups"]:
        if group.get("action") == "conflict":
            continue
        gid = group_ids.get(group["step"])
        live = by_id.get(gid) if gid else None
        pg = group["permission_group"]
        if live is None:
            diffs.append({"kind": "group_missing", "subject": group["name"], "detail": "the User Group does not exist"})
            continue
        if live["name"] != group["name"]:
            diffs.append({"kind": "name_changed", "subject": group["name"], "detail": f"now named {live['name']!r}"})
        if not iam.grants(live.get("policies"), pg["id"], rg_ids):
            diffs.append({"kind": "policy_missing", "subject": group["name"], "detail": f"no allow policy for {pg['name']!r} on the whole account"})
            continue
        present = live_members.get(gid, set())
        for member in group["members"]:
            if member["id"] not in present:
                diffs.append({"kind": "member_missing", "subject": member["email"], "detail": f"not in User Group {group['name']!r}"})
        listed = {m["id"] for m in group["members"]} | {m["id"] for m in group.get("existing_members", [])}
        for member_id in sorted(present - listed):
            diffs.append({"kind": "unplanned_member", "subject": member_id,
                          "detail": f"is in User Group {group['name']!r} and gains {pg['name']!r}, which the plan does not list"})
        for member_id in present:
            grantors.setdefault(member_id, set()).add(pg["id"])
    for member_id, email, pg_id, pg_name in sorted(memberships, key=lambda m: (m[1], m[3])):
        if pg_id not in grantors.get(member_id, set()):
            diffs.append({"kind": "access_not_granted", "subject": email, "detail": f"{pg_name!r} came from a virtual group but no migrated User Group grants it"})
    return diffs


def live_group_ids(plan, inventory, run_id):
    """Plan group step -> the User Group id the apply run gave it (created, synced from the IdP or
    adopted); None where the run never got that far."""
    group_ids = {g["step"]: g.get("existing_id") for g in plan["groups"]}
    for step, gid in inventory.created_groups(run_id, kinds_where(lambda k: k.makes_group)).items():
        group_ids[plan_group_of(step)] = gid
    return group_ids


def verify_run(client, inventory, run_id=None, parallel=None, progress=None):
    """Returns (run, differences, counts). Groups' member lists are read `parallel` at a time
    (default: the client's); the differences come out in the same order either way.
    progress(n, total): n more of the `total` User Groups to read have been read (0 first)."""
    import threading

    parallel = parallel or client.parallel
    progress = progress or (lambda n, total: None)
    run = apply_run(inventory, run_id)
    plan = inventory.plan_body(run["plan_id"])
    if plan is None:
        raise VgmigrateError(f"the plan of run {run['id']} is not in this inventory")
    plan = {"groups": plan["groups"], "scan": plan["scan"]}  # all it reads: free the access picture and steps
    group_ids = live_group_ids(plan, inventory, run["id"])
    listing = client.user_groups().start()  # its pages and the resource groups, concurrently
    rg_ids = iam.account_wide_ids(client.resource_groups(), client.account_id)
    live_groups = list(listing)
    live_ids = {g["id"] for g in live_groups}
    read = sorted(gid for gid in set(group_ids.values()) if gid in live_ids)
    progress(0, len(read))
    lock = threading.Lock()

    def read_members(gid):
        found = {m["id"] for m in client.user_group_members(gid)}
        with lock:
            progress(1, len(read))
        return found

    members = run_parallel(read_members, read, parallel)
    live_members = dict(zip(read, members))
    # What the virtual groups granted, read from the scan itself rather than from the plan.
    migrated = {vg["id"]: g["permission_group"] for g in plan["groups"] if g.get("action") != "conflict" for vg in g["virtual_groups"]}
    memberships = {
        (member_id, email, migrated[vg_id]["id"], migrated[vg_id]["name"])
        for vg_id, email, member_id in inventory.links(plan["scan"]["id"], ("virtual_group_id", "email", "member_id"))
        if vg_id in migrated and member_id
    }
    diffs = compare(plan, group_ids, live_groups, live_members, rg_ids, memberships)
    # After a cutover, the migration is complete only once Cloudflare has dropped the legacy roles.
    removals = removals_of(inventory, run["plan_id"])
    if removals:
        for email, group in legacy_left(client, removals):
            diffs.append({"kind": "legacy_role_remains", "subject": email,
                          "detail": f"left {group!r} in the cutover, but Cloudflare still gives its legacy role (the IdP's push has not landed)"})
    counts = {"groups": len([g for g in plan["groups"] if g.get("action") != "conflict"]), "member_roles": len(memberships), "differences": len(diffs)}
    return run, diffs, counts
