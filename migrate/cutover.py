"""The cutover: once the new User Groups are verified, take the migrated members out of the old
`CF-` groups in the IdP, one group at a time, so Cloudflare drops the legacy roles they granted.

Journaled like apply (a run of kind "cutover") and undone by `vgmigrate rollback` before the apply
it follows. After each group it reads the User Group that replaces it again: everyone removed
must still be in it, with the policy, or the cutover stops there. With `--delete-groups` a group
the removal left empty is then deleted too (and checked the same way); rollback re-creates it.
"""

from dataclasses import dataclass

from . import iam
from .iam import SUPER_ADMIN
from .idp.base import idp_of
from .errors import VgmigrateError
from .executor import JournaledRun
from .names import parse_virtual_group_name
from .legacy import legacy_left, legacy_roles, member_ids_of
from .steps import DeleteIdpGroup, RemoveIdpMembers, StepFailed, is_kind, kind_of, removals_of
from .verify import live_group_ids, verify_run
from .waiting import wait_until
from .runs import DONE, FAILED, INTERRUPTED, PENDING, RUNNING


def cutover_steps(plan, group_ids, idp_groups, held, delete_groups=False, emptied_before=None):
    """Pure: one step per old CF- group that still holds migrated members.

    group_ids: plan group step -> live User Group id. idp_groups: the IdP's CF- groups with
    `users_obj`. held: email key -> name keys of the legacy roles the member holds in Cloudflare.
    Only members the plan put into a User Group leave, and only if Cloudflare still gives them the
    group's role: putting back (rollback) someone who had lost it would grant it again.
    delete_groups: also a delete step ("<remove step>.delete", after it) for each group the removal
    leaves empty; emptied_before: group uuid -> earlier members, of groups an earlier cutover run of
    this plan emptied (an interrupted `--delete-groups` run deletes them now).
    Returns (steps, checks: step id -> (User Group id, member emails removed, permission group id),
    stay: (CF- group name, email) of migrated members left in place, kept: (CF- group name, why)
    of the groups --delete-groups leaves).
    """
    # Exact names first: "CF-<id> - dns" and "CF-<id> - DNS" are two groups in the IdP.
    by_exact = {g["name"]: g for g in idp_groups}
    by_name = {iam.name_key(g["name"]): g for g in idp_groups}
    provider = (plan.get("idp") or {}).get("provider", {}).get("pk")
    steps, checks, stay, kept, n = [], {}, [], [], 0
    for group in plan["groups"]:
        gid = group_ids.get(group["step"])
        if group.get("action") == "conflict" or not gid:
            continue
        member_id = {iam.email_key(m["email"]): m["id"] for m in group["members"] if m.get("email")}
        migrated = set(member_id)
        for vg in group["virtual_groups"]:
            old = by_exact.get(vg["name"]) or by_name.get(iam.name_key(vg["name"]))
            if old is None:
                continue
            leaving = [u for u in old.get("users_obj") or [] if iam.email_key(u.get("email")) in migrated]
            stay += [(old["name"], u["email"]) for u in leaving if iam.name_key(vg["role"]) not in held.get(iam.email_key(u["email"]), ())]
            leaving = [u for u in leaving if iam.name_key(vg["role"]) in held.get(iam.email_key(u["email"]), ())]
            users = old.get("users_obj") or []
            if not leaving and not (delete_groups and not users and old["pk"] in (emptied_before or {})):
                if delete_groups and users:
                    kept.append((old["name"], _why_kept(users, leaving, migrated)))
                continue
            n += 1
            sid = f"c{n:03d}"
            emails = sorted(iam.email_key(u["email"]) for u in leaving)
            if leaving:
                steps.append(RemoveIdpMembers.build(sid, old, [u["pk"] for u in leaving], emails, [member_id[e] for e in emails]))
                checks[sid] = (gid, emails, group["permission_group"]["id"])
            if not delete_groups:
                continue
            if len(leaving) < len(users):
                kept.append((old["name"], _why_kept(users, leaving, migrated)))
            elif old.get("children") or old.get("roles"):
                kept.append((old["name"], "it has child groups or roles, which a rollback could not restore"))
            else:
                request = {"group": old["pk"], "provider": provider}
                if not leaving:  # emptied by an earlier run: its journal has the members
                    request["users_before"] = (emptied_before or {})[old["pk"]]
                steps.append(DeleteIdpGroup.build(sid, old["name"], request, after=[sid] if leaving else []))
                # The same check again: deleting the group must take no role the new one gives.
                checks[f"{sid}.delete"] = (gid, emails, group["permission_group"]["id"])
    return steps, checks, stay, kept


def _why_kept(users, leaving, migrated):
    """Why `--delete-groups` leaves a CF- group: who is still in it."""
    left = [u for u in users if u not in leaving]
    moved = sum(1 for u in left if iam.email_key(u.get("email")) in migrated)
    parts = ([f"{len(left) - moved} not migrated"] if len(left) > moved else []) + ([f"{moved} migrated but no longer holding its role"] if moved else [])
    return f"{len(left)} member(s) left in it ({', '.join(parts)})"


def supers_outside_scim(members, idp_groups, account_id):
    """Accepted Super Administrators who will hold the role without any CF- group once the
    migrated members leave them (by a legacy role or a policy, as the scan counts them): anyone
    still in a CF- group for it depends on SCIM."""
    in_super_groups = {
        iam.email_key(u.get("email"))
        for g in idp_groups
        # Only this account's CF- groups: another account's grant nothing here (as the scan counts them).
        if (parsed := parse_virtual_group_name(g["name"])) and parsed.account_id == account_id
        and iam.name_key(parsed.role) == iam.name_key(SUPER_ADMIN)
        for u in g.get("users_obj") or []
    }
    return sorted(
        m["email"] for m in members
        if m.get("status") == "accepted" and iam.email_key(m["email"]) not in in_super_groups
        and iam.name_key(SUPER_ADMIN) in iam.held_permission_group_names(m, account_id)
    )


def roles_not_back(client, removals):
    """[(removal action, IdP group, user pks)]: members a cutover took out of a CF- group,
    whom the IdP has back in it but Cloudflare has not given the group's role again (the push
    failed). A rollback must not take their new User Group away while this list is not empty."""
    idp, held, out = idp_of(client), None, []
    for action in removals:
        parsed = parse_virtual_group_name(action["target"])
        group = idp.group(action["request"]["group"]) or idp.group_by_name(action["target"])
        if parsed is None or group is None:
            continue
        held = held if held is not None else legacy_roles(client, member_ids=member_ids_of(removals))
        back = {u["pk"]: u for u in group.get("users_obj") or [] if u["pk"] in set(action["request"]["remove"])}
        missing = sorted(pk for pk, u in back.items() if iam.name_key(parsed.role) not in held.get(iam.email_key(u.get("email")), ()))
        if missing:
            out.append((action, group, missing))
    return out


def wait_for_cloudflare(client, removals, timeout):
    """Wait until Cloudflare has dropped every legacy role the removals take away; what is left."""
    def check():
        left = legacy_left(client, removals)
        return not left, left

    return wait_until(check, timeout, f"Cloudflare to drop the legacy roles of the members leaving {len(removals)} CF- group(s)")


def left_message(left, timeout, idp_name):
    first = ", ".join(f"{email} in {group!r}" for email, group in left[:3])
    return (f"Cloudflare still gives {len(left)} legacy role(s) {timeout:g} s after the members left their CF- groups in {idp_name} "
            f"({first}): {idp_name} has not pushed the removal yet, or its push failed (`vgmigrate idp check` shows why). "
            "Run `vgmigrate cutover` again to keep waiting")


def finish_waiting(client, inventory, plan_id, timeout):
    """The cutovers of this plan that stopped before they were done (their removals had not reached
    Cloudflare by the deadline, or the process was killed) and that leave nothing to remove: a
    removal journaled as pending is checked in the IdP, then Cloudflare is waited for, and the
    runs are marked done once it has dropped the legacy roles. Returns (the newest such run, what
    is left), or (None, []) when there is none."""
    unfinished = [r for r in inventory.runs("cutover") if r["plan_id"] == plan_id and r["status"] in (FAILED, RUNNING, INTERRUPTED)]
    waiting = []
    for run in unfinished:
        actions = inventory.actions(run["id"], response=False)
        for action in actions:
            if action["status"] == PENDING:
                found = kind_of(action).reconcile(client, action["request"], {}, fresh=True)
                if found:
                    inventory.journal_update(run["id"], action["seq"], DONE, object_id=found, error="reconciled with live state after an interrupted run")
                    action["status"] = DONE
        if all(a["status"] == DONE for a in actions):
            waiting.append(run)
    if not waiting:
        return None, []
    left = wait_for_cloudflare(client, removals_of(inventory, plan_id), timeout)
    for run in waiting:
        inventory.update_run(run["id"], status=DONE if not left else FAILED, message="all steps done; Cloudflare has dropped the legacy roles"
                             if not left else left_message(left, timeout, idp_of(client).name))
    return waiting[-1], left


class Cutover(JournaledRun):
    """The cutover's steps, one at a time, with the access check after each; done only once
    Cloudflare has dropped the legacy roles the removals take away."""

    kind = "cutover"
    resume = "`vgmigrate cutover` finishes it, `vgmigrate rollback` puts the members back"

    def __init__(self, client, inventory, steps, checks, plan_id, progress=None, timeout=120.0):
        super().__init__(client, inventory, steps, plan_id, progress)
        self.checks = checks
        self.timeout = timeout

    def _execute(self):
        super()._execute()
        left = wait_for_cloudflare(self.client, removals_of(self.inv, self.plan["plan_id"]), self.timeout)
        if left:
            raise StepFailed(left_message(left, self.timeout, idp_of(self.client).name))

    def _finish(self, step, object_id, outcome):
        gid, emails, pg_id = self.checks[step["id"]]
        group = self.client.user_group(gid)
        present = {iam.email_key(m.get("email")) for m in self.client.user_group_members(gid)}
        missing = [e for e in emails if e not in present]
        if missing or not iam.grants(group.get("policies"), pg_id, iam.account_wide_ids(self.client.resource_groups(), self.client.account_id)):
            who = ", ".join(missing[:3]) or "its members"
            raise StepFailed(f"after leaving {step['target']!r}, {who} no longer get its role from User Group {group.get('name')!r}; "
                             "the cutover stopped: run `vgmigrate rollback` to put the members back, then `vgmigrate verify`")
        super()._finish(step, object_id, outcome)


@dataclass
class Work:
    """The cutover of one apply run, worked out from live state (cutover_steps says what each is)."""

    plan: dict
    steps: list
    checks: dict
    stay: list
    kept: list
    verified: dict = None  # the counts of the verify run first (verify_run's)


def prepare(client, inventory, run, delete_groups=False):
    """The cutover of this apply run, after a live verify and the break-glass check; a one-line
    error when it must not go ahead."""
    if run["status"] != DONE:
        raise VgmigrateError(f"apply run {run['id']} is {run['status']}: finish it (`vgmigrate apply`) and verify before the cutover")
    _, diffs, counts = verify_run(client, inventory, run["id"])
    diffs = [d for d in diffs if d["kind"] != "legacy_role_remains"]  # what an earlier cutover still waits for
    if diffs:
        first = diffs[0]
        raise VgmigrateError(f"verify finds {len(diffs)} difference(s) (first: {first['kind']} {first['subject']}: {first['detail']}): "
                             "the cutover runs only after a clean `vgmigrate verify`, which lists them all")
    plan = inventory.plan_body(run["plan_id"])
    group_ids = live_group_ids(plan, inventory, run["id"])
    idp_groups = idp_of(client).cf_groups(include_users=True)
    members = list(client.members())
    held = legacy_roles(client, members)
    emptied_before = {}
    if delete_groups:  # groups an earlier, unfinished cutover emptied and did not delete yet
        for earlier in inventory.runs("cutover"):
            if earlier["plan_id"] == run["plan_id"]:
                for a in inventory.actions(earlier["id"], response=False):
                    if is_kind(a, RemoveIdpMembers) and a["status"] == DONE and not a["request"]["users"]:
                        emptied_before[a["request"]["group"]] = a["inverse"]["users"]
    steps, checks, stay, kept = cutover_steps(plan, group_ids, idp_groups, held, delete_groups, emptied_before)
    # Whoever leaves a CF- group for Super Administrator loses the role it gave (Cloudflare cannot
    # tell it from a direct grant) and holds it through a SCIM group: only those in none count.
    if steps and not supers_outside_scim(members, idp_groups, client.account_id):
        raise VgmigrateError("the cutover would leave no accepted Super Administrator outside SCIM: grant Super Administrator "
                             "directly to a break-glass member, then run the cutover again")
    return Work(plan, steps, checks, stay, kept, counts)

