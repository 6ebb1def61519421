"""API-mode step kinds: vgmigrate makes the account-wide resource group, the User Group with its
policy, adopts an existing group, and adds the members, all through Cloudflare's API.

Every method takes the CloudflareClient, so the method and path written to the journal are built
by the same code that sends the call.
"""

from .. import iam
from .base import StepKind, make_step, register
from ..runs import PENDING


class CreateResourceGroup(StepKind):
    kind = "create_resource_group"
    label = "create resource group"

    @classmethod
    def build(cls, account_id):
        """The account-wide resource group a plan binds its policies to, when the account has none."""
        key = iam.account_scope_key(account_id)
        return make_step("rg", cls.kind, key, {"name": key, "scope": iam.account_wide_scope(account_id)},
                         {"kind": "delete_resource_group"})

    def endpoint(self, client, request):
        return "POST", client.resource_groups_path()

    def send(self, client, request):
        return client.create_resource_group(request["name"], request["scope"]["key"], [o["key"] for o in request["scope"]["objects"]])

    def object_id(self, request, result):
        return result["id"]

    def reconcile(self, client, request, live, fresh):
        found = self._find(client.resource_groups(name=request["name"]) if fresh else live["rgs"], request, client.account_id)
        return found["id"] if found else None

    @staticmethod
    def _find(resource_groups, request, account_id):
        """The account-wide resource group this step made: account-wide, with the name it gave.
        A domain-scoped group has the same scope key and is never taken for it."""
        for rg in resource_groups:
            if iam.is_account_wide(rg, account_id) and iam.name_key(rg.get("name")) == iam.name_key(request["name"]):
                return rg
        return None

    def undo(self, job, action):
        rg_id = action["object_id"]
        if rg_id is None:  # the create's answer was lost: look for what it would have made
            found = self._find(job.live_rgs.values(), action["request"], job.client.account_id)
            rg_id = found["id"] if found else None
        if rg_id is None or rg_id not in job.live_rgs:
            return job.mark(action, "already gone")
        users = [
            g["name"] for g in job.live_groups.values()
            if g["id"] not in job.deleted_groups
            and any(rg["id"] == rg_id for p in g.get("policies") or [] for rg in p.get("resource_groups") or [])
        ]
        if users:
            return job.leave(action, f"resource group {rg_id} left in place: still used by {', '.join(sorted(users)[:5])}")
        job.call(action, "DELETE", job.client.resource_group_path(rg_id), lambda: job.client.delete_resource_group(rg_id),
                 f"delete resource group {rg_id}")


class CreateUserGroup(StepKind):
    kind = "create_user_group"
    label = "create User Group with its policy"
    makes_group = True
    creates_policy = True
    vgmigrate_manages = True

    @classmethod
    def build(cls, sid, name, policy, after):
        return make_step(sid, cls.kind, name, {"name": name, "policies": [policy]}, {"kind": "delete_user_group"}, after, group=sid)

    def endpoint(self, client, request):
        return "POST", client.user_groups_path()

    def send(self, client, request):
        return client.create_user_group(request["name"], request["policies"])

    def object_id(self, request, result):
        return result["id"]

    def reconcile(self, client, request, live, fresh):
        found = self.find(client.user_groups(name=request["name"]) if fresh else live["groups"], request)
        return found["id"] if found else None

    @staticmethod
    def find(groups, request):
        """The live group a create made: its name, with exactly the policies it was given."""
        for g in groups:
            if iam.name_key(g["name"]) == iam.name_key(request["name"]) and iam.same_policies(g.get("policies"), request["policies"]):
                return g
        return None

    def undo(self, job, action):
        if action["object_id"]:
            group = job.live_groups.get(action["object_id"])
        else:  # the create's answer was lost: look it up by name and policies
            group = self.find(job.live_groups.values(), action["request"])
        if group is None:
            return job.mark(action, "already gone")
        changed = not iam.same_policies(group.get("policies"), action["request"]["policies"])
        member_actions = job.members_actions(group["id"])
        added = {m for a in member_actions for m in a["request"]["members"]}
        extra = {m["id"] for m in job.client.user_group_members(group["id"])} - added
        if (changed or extra) and not job.force:
            why = "its policies changed" if changed else f"{len(extra)} member(s) were added by someone else"
            return job.leave(action, f"User Group {group['name']!r} ({group['id']}) left in place: {why}; use --force to delete it anyway")
        job.call(action, "DELETE", job.client.user_group_path(group["id"]), lambda: job.client.delete_user_group(group["id"]),
                 f"delete User Group {group['name']!r}")
        job.deleted_groups.add(group["id"])
        for members_action in member_actions:
            job.mark(members_action, "removed with the group")


class AdoptUserGroup(StepKind):
    """Add the migrated policy to an existing User Group (PUT replaces the whole policy set, so the
    request carries the group's earlier policies, with their ids, and the new one)."""

    kind = "adopt_user_group"
    label = "add policy to existing User Group"
    creates_policy = True
    vgmigrate_manages = True
    grants_to = "gains"  # everyone already in the adopted group

    @classmethod
    def build(cls, sid, name, group_id, prior, new_policy, after):
        return make_step(sid, cls.kind, name, {"id": group_id, "policies": prior + [new_policy]},
                         {"kind": "restore_policies", "id": group_id, "policies": prior}, after, group=sid)

    def endpoint(self, client, request):
        return "PUT", client.user_group_path(request["id"])

    def send(self, client, request):
        return client.update_user_group(request["id"], policies=request["policies"])

    def object_id(self, request, result):
        return request["id"]

    def reconcile(self, client, request, live, fresh):
        current = client.user_group(request["id"])
        return request["id"] if iam.same_policies(current.get("policies"), request["policies"]) else None

    def undo(self, job, action):
        gid = action["request"]["id"]
        live = job.live_groups.get(gid)
        prior = action["inverse"]["policies"]
        if live is None:
            return job.mark(action, "group already gone")
        if iam.same_policies(live.get("policies"), prior):
            return job.mark(action, "already restored")
        if not iam.same_policies(live.get("policies"), action["request"]["policies"]) and not job.force:
            return job.leave(action, f"policies of User Group {live['name']!r} changed since the run; use --force to restore them anyway")
        job.call(action, "PUT", job.client.user_group_path(gid), lambda: job.client.update_user_group(gid, policies=prior),
                 f"restore the policies of User Group {live['name']!r}")
        live["policies"] = prior  # so the resource group check sees the restored set


class AddMembers(StepKind):
    kind = "add_members"
    label = "add members"
    adds_members = True
    grants_to = "request"

    @classmethod
    def build(cls, group_step, target, group_ref, member_ids, after):
        # The inverse is filled in at apply time with the membership found just before the add.
        return make_step(f"{group_step}.members", cls.kind, target, {"group": group_ref, "members": member_ids},
                         {"kind": "restore_members"}, after, group=group_step)

    def added_members(self, request):
        return request["members"]

    def describe(self, step):
        return f"add {len(step['request']['members'])} member(s)"

    def prepare(self, apply, step, request, prior):
        """Send only the members not in the group yet, and record the membership found before the
        first attempt so rollback restores it exactly. A group this run created starts empty and is
        deleted whole on rollback, so it needs no read."""
        group = request["group"]
        if prior and prior["status"] == PENDING:  # the first attempt may have added some already
            inverse = prior["inverse"]
            present = {m["id"] for m in apply.client.user_group_members(group)}
        elif group in apply.created_here:
            inverse, present = {"kind": "covered_by_delete", "group": group}, set()
        else:
            present = {m["id"] for m in apply.client.user_group_members(group)}
            inverse = {"kind": "restore_members", "group": group, "members": sorted(present)}
        return {**request, "members": [m for m in request["members"] if m not in present]}, inverse

    def endpoint(self, client, request):
        return "POST", client.user_group_members_path(request["group"])

    def send(self, client, request):
        return client.add_user_group_members(request["group"], request["members"])

    def object_id(self, request, result):
        return request["group"]

    def reconcile(self, client, request, live, fresh):
        present = {m["id"] for m in client.user_group_members(request["group"])}
        return request["group"] if set(request["members"]) <= present else None

    def undo(self, job, action):
        inverse = action["inverse"] or {}
        group_id = action["request"]["group"]
        if inverse.get("kind") == "covered_by_delete":
            if group_id not in job.live_groups:  # deleted by an earlier, interrupted rollback
                return job.mark(action, "removed with the group")
            return  # undone when its group is deleted (the create is older, so it comes next)
        if group_id not in job.live_groups:
            return job.mark(action, "group already gone")
        prior = set(inverse["members"])
        live = {m["id"] for m in job.client.user_group_members(group_id)}
        if live == prior:
            return job.mark(action, "already restored")
        if live != prior | set(action["request"]["members"]) and not job.force:
            return job.leave(action, f"membership of User Group {group_id} changed since the run; use --force to restore it anyway")
        job.call(action, "PUT", job.client.user_group_members_path(group_id),
                 lambda: job.client.replace_user_group_members(group_id, sorted(prior)),
                 f"restore the {len(prior)} earlier member(s) of User Group {action['target']!r}")



register(CreateResourceGroup(), CreateUserGroup(), AdoptUserGroup(), AddMembers())
