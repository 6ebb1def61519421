"""IdP-mode step kinds: the group lives in the IdP, which pushes it to Cloudflare over SCIM, and
the cutover's and its rollback's changes to the old CF- groups there.

Cloudflare locks a SCIM group's name, members and deletion to the IdP, so vgmigrate writes the
group and its members in the IdP and only the policy in Cloudflare. These kinds reach the IdP
through `idp_of(client)`.
"""

import time

from .. import iam
from ..idp.base import idp_of
from ..errors import CloudflareError, OutcomeUnknown, SyncError, VgmigrateError
from ..legacy import legacy_left
from ..waiting import wait_until
from .api import AdoptUserGroup
from .base import StepFailed, StepKind, make_step, plan_group_of, register, user_group_or_none
from ..runs import DONE, PENDING

# Seconds (at most a quarter of the sync timeout) a pushed group may take before vgmigrate looks
# for it in Cloudflare unlinked (see SyncIdpGroup.link_orphan).
LINK_GRACE = 10.0


class AttachIdpPolicy(AdoptUserGroup):
    """The policy on the User Group the IdP pushed. Its id is known only once the sync is done, so
    the group's policies are read just before the PUT (which replaces them all) and kept for rollback."""

    kind = "attach_idp_policy"
    label = "attach the policy to the synced User Group"
    vgmigrate_manages = False  # the IdP owns the group; vgmigrate only its policy
    grants_to = "group"  # the plan group's members, whom the IdP put there

    @classmethod
    def build(cls, sid, name, policy, rg_exists):
        after = [f"{sid}.sync"] + ([] if rg_exists else ["rg"])
        return make_step(f"{sid}.policy", cls.kind, name, {"id": f"${sid}.sync", "policies": [policy]},
                         {"kind": "restore_policies"}, after, group=sid)

    def prepare(self, apply, step, request, prior):
        if prior and prior["status"] == PENDING:
            before = prior["inverse"]["policies"]
        else:
            before = iam.write_policies(apply.client.user_group(request["id"]).get("policies"))
        inverse = {"kind": "restore_policies", "id": request["id"], "policies": before}
        return {**request, "policies": before + request["policies"]}, inverse

    def reconcile(self, client, request, live, fresh):
        current = {iam.policy_key(p) for p in client.user_group(request["id"]).get("policies") or []}
        return request["id"] if {iam.policy_key(p) for p in request["policies"]} <= current else None




class IdpStep(StepKind):
    """A step sent to the IdP: its answer is the one the journal records."""

    in_cloudflare_audit_log = False  # the IdP's own log has it; its SCIM push to Cloudflare is the IdP's call

    def transport(self, client):
        return idp_of(client)


class CreateIdpGroup(IdpStep):
    kind = "create_idp_group"
    label = "create the IdP group with its members"

    @classmethod
    def build(cls, sid, name, users, marker):
        return make_step(sid, cls.kind, name, {"name": name, "users": users, "attributes": {"vgmigrate": marker}},
                         {"kind": "delete_idp_group"}, group=sid)

    def describe(self, step):
        return f"{self.label} ({len(step['request']['users'])})"

    def prepare(self, apply, step, request, prior):
        # The group carries the run that made it, so a late copy of its create is told from another
        # inventory's group of the same name and permission group.
        marker = {**request["attributes"]["vgmigrate"], "run": apply.run_id}
        return {**request, "attributes": {**request["attributes"], "vgmigrate": marker}}, dict(step["inverse"])

    def already_done(self, client, request, err):
        found = self.find(idp_of(client), request) if err.status == 400 else None
        return found["pk"] if found else None

    def endpoint(self, client, request):
        return "POST", idp_of(client).groups_path()

    def send(self, client, request):
        return idp_of(client).create_group(request["name"], users=request["users"], attributes=request["attributes"])

    def object_id(self, request, result):
        return result["pk"]

    def reconcile(self, client, request, live, fresh):
        # With every member: an IdP that adds them one by one (Okta) may have stopped part way.
        found = self.find(idp_of(client), request)
        return found["pk"] if found and set(map(str, request["users"])) <= set(map(str, found.get("users") or [])) else None

    @staticmethod
    def find(idp, request):
        """The group a create made: its exact name, carrying the attributes vgmigrate gave it."""
        group = idp.group_by_name(request["name"])
        mine = group and (group.get("attributes") or {}).get("vgmigrate") == request["attributes"]["vgmigrate"]
        return group if mine else None

    def undo(self, job, action):
        idp = idp_of(job.client)
        request = action["request"]
        group = idp.group(action["object_id"]) if action["object_id"] else self.find(idp, request)
        if group is None:
            return job.mark(action, "already gone")
        live, made = set(group.get("users") or []), set(request["users"])
        # A create left pending may have stopped part way through its members (Okta adds them one by one).
        if not (live == made or (action["status"] == PENDING and live <= made)) and not job.force:
            return job.leave(action, f"{idp.name} group {group['name']!r} left in place: its members changed since the run; "
                                     "use --force to delete it anyway")
        synced = job.sibling(action, SyncIdpGroup.kind)
        if synced:
            for method, path, call, words in idp.unpush_calls(synced["request"]["provider"], group["pk"]):
                job.call(action, method, path, call, words, final=False)
        job.call(action, "DELETE", idp.group_path(group["pk"]), lambda: idp.delete_group(group["pk"]),
                 f"delete {idp.name} group {group['name']!r} ({idp.name} deletes its User Group in Cloudflare)")
        if synced and synced["object_id"] and not job.dry_run:
            # The IdP pushes the DELETE from its worker, later: wait for it.
            gid = synced["object_id"]
            left = wait_until(lambda: (user_group_or_none(job.client, gid) is None, gid), idp.sync_timeout,
                              f"Cloudflare to delete User Group {group['name']!r}")
            if left:
                job.leave(action, f"User Group {group['name']!r} ({gid}) is still in Cloudflare {idp.sync_timeout:g} s after its {idp.name} "
                                  f"group was deleted ({idp.name} has not pushed the delete, or it failed): `vgmigrate idp check` shows the "
                                  "sync errors")


class ScopeIdpGroups(IdpStep):
    """Put the new groups in the provider's push scope (one step for all of them: Authentik's
    group_filters is one list that each PATCH replaces, so concurrent ones would lose additions)."""

    kind = "scope_idp_groups"
    label = "put the groups in the IdP's push scope"

    @classmethod
    def build(cls, provider, creates):
        return make_step("scope", cls.kind, provider["name"], {"provider": provider["pk"], "add": [f"${c['id']}" for c in creates]},
                         {"kind": "restore_group_filters"}, [c["id"] for c in creates])

    def prepare(self, apply, step, request, prior):
        if prior and prior["status"] == PENDING:
            before = prior["inverse"]["group_filters"]
        else:
            before = idp_of(apply.client).scope_of(request["provider"])
        wanted = before + [g for g in request["add"] if g not in before]
        refuse_cleanup(apply.client, request["provider"], wanted, f"adding {len(request['add'])} group(s) to the sync scope")
        inverse = {"kind": "restore_group_filters", "provider": request["provider"], "group_filters": before}
        return {**request, "group_filters": wanted}, inverse

    def endpoint(self, client, request):
        return "PATCH", idp_of(client).scope_path(request["provider"])

    def send(self, client, request):
        return idp_of(client).set_scope(request["provider"], request["group_filters"])

    def object_id(self, request, result):
        return str(request["provider"])

    def reconcile(self, client, request, live, fresh):
        current = idp_of(client).scope_of(request["provider"])
        return str(request["provider"]) if set(request["add"]) <= set(current) else None

    def undo(self, job, action):
        idp = idp_of(job.client)
        provider = action["request"]["provider"]
        before = action["inverse"]["group_filters"]
        current = idp.scope_of(provider)
        # A CF- group `cutover --delete-groups` deleted comes back (rollback, cutover first) with a
        # new uuid, put back into the scope by that undo: it stands for the old one here.
        for old, name in job.replaced_idp_groups().items():
            if old in before and old not in current:
                again = None if job.dry_run else idp.group_by_name(name, include_users=False)
                before = [again["pk"] if u == old else u for u in before] if again else [u for u in before if u != old]
        if set(current) == set(before):
            return job.mark(action, "already restored")
        if set(current) != set(before) | set(action["request"]["add"]) and not job.force:
            return job.leave(action, f"the push scope of {idp.name} provider {provider} changed since the run; use --force to restore it anyway")
        if not job.dry_run:
            refuse_cleanup(job.client, provider, before, "restoring the push scope", StepError=VgmigrateError)
        job.call(action, "PATCH", idp.scope_path(provider), lambda: idp.set_scope(provider, before),
                 f"restore the push scope of {idp.name} provider {provider} ({len(before)} group(s))")


class SyncIdpGroup(IdpStep):
    """Ask the IdP to push one group now and wait until Cloudflare has it as a SCIM group with
    every planned member. Its object id is that User Group's id."""

    kind = "sync_idp_group"
    label = "push the group to Cloudflare and wait for it"
    makes_group = True
    adds_members = True

    @classmethod
    def build(cls, sid, name, provider_pk, member_ids, scoped):
        return make_step(f"{sid}.sync", cls.kind, name, {"provider": provider_pk, "group": f"${sid}", "name": name, "members": member_ids},
                         {"kind": "deleted_with_idp_group"}, [sid] + (["scope"] if scoped else []), group=sid)

    def added_members(self, request):
        return request["members"]

    def endpoint(self, client, request):
        return "POST", idp_of(client).push_path(request["provider"])

    def send(self, client, request):
        """Ask for the push, then wait for Cloudflare. The IdP pushes a group in scope by itself
        too, so a push request whose outcome is unknown (Authentik answers 500 when its worker is
        busy, though the push may still happen) is not sent again: Cloudflare is watched instead."""
        idp = idp_of(client)
        try:
            problems = idp.push(request["provider"], request["group"])
        except OutcomeUnknown:
            problems = []
        if problems:
            raise SyncError(f"{idp.name} could not push {request['name']!r}: {'; '.join(map(str, problems))[:300]}. "
                            "`vgmigrate idp check` shows the provider's state; fix it and run apply again")
        found, started = {}, time.monotonic()
        grace = min(LINK_GRACE, idp.sync_timeout / 4)

        def check():
            failed = idp.push_problems(request["provider"], request["group"])
            if failed:
                raise SyncError(f"{idp.name} could not push {request['name']!r}: {'; '.join(map(str, failed))[:300]}. "
                                "`vgmigrate idp check` shows the provider's state; fix it and run apply again")
            found["id"] = self.arrived(client, request)
            if not found["id"] and "linked" not in found and time.monotonic() - started >= grace:
                found["linked"] = self.link_orphan(client, request)
                if found["linked"]:  # a push now sends the members, as an adoption would
                    try:
                        idp.push(request["provider"], request["group"])
                    except OutcomeUnknown:
                        pass
            return found["id"], None

        wait_until(check, idp.sync_timeout, f"{request['name']!r} to reach Cloudflare from {idp.name}")
        if not found["id"]:
            raise SyncError(f"User Group {request['name']!r} did not reach Cloudflare with its {len(request['members'])} member(s) "
                            f"within {idp.sync_timeout:g} s of the push; `vgmigrate idp check` shows push errors. Run apply again to keep waiting")
        return {"id": found["id"]}

    @staticmethod
    def link_orphan(client, request):
        """A push whose answer was lost can leave the group in Cloudflare unknown to the IdP, and
        every later push of it fails with a 409 (Authentik before 2026.2 never adopts it). That
        group carries this IdP group's id as its externalId: it is this one's, so link it. True if
        a link was made."""
        idp = idp_of(client)
        if not idp.links_groups or idp.pushed_id(request["provider"], request["group"]):
            return False
        found = pushed_by_external_id(client, request["name"], request["group"])
        return bool(found) and idp.link(request["provider"], request["group"], found)

    @staticmethod
    def arrived(client, request):
        """The User Group's id once the IdP names it (or, for an IdP that keeps no link, Cloudflare
        has a group of this name carrying the IdP group's id) and Cloudflare has it with every
        planned member; else None."""
        idp = idp_of(client)
        if idp.links_groups:
            scim_id = idp.pushed_id(request["provider"], request["group"])
        else:
            scim_id = pushed_by_external_id(client, request["name"], request["group"] if idp.sends_external_id else None)
        if not scim_id or user_group_or_none(client, scim_id) is None:
            return None
        present = {m["id"] for m in client.user_group_members(scim_id)}
        return scim_id if set(request["members"]) <= present else None

    def object_id(self, request, result):
        return result["id"]

    def reconcile(self, client, request, live, fresh):
        return self.arrived(client, request)

    def undo(self, job, action):
        job.mark(action, "undone with its IdP group")


def pushed_by_external_id(client, name, group_pk):
    """The id of the Cloudflare SCIM group named `name` whose externalId is this IdP group's id, or
    None. group_pk None: an IdP whose push sends no externalId (Okta), the name alone; the plan made
    sure no other group had it, and Cloudflare refuses a second SCIM group of one name."""
    quoted = name.replace("\\", "\\\\").replace('"', '\\"')
    for group in client.scim_groups(filter=f'displayName eq "{quoted}"'):
        if (group_pk is None or group.get("externalId") == str(group_pk)) and group.get("displayName") == name:
            return group["id"]
    return None


class RemoveIdpMembers(IdpStep):
    """Cutover: take the migrated members out of an old CF- group in the IdP, which pushes the
    removal to Cloudflare's virtual group (the legacy role goes; the User Group's stays)."""

    kind = "remove_idp_members"
    label = "remove migrated members from the CF- group in the IdP"

    @classmethod
    def build(cls, sid, old_group, user_pks, emails, member_ids):
        """member_ids: the account members leaving, so waiting for Cloudflare reads only them."""
        request = {"group": old_group["pk"], "remove": sorted(user_pks), "emails": emails, "members": sorted(member_ids)}
        return make_step(sid, cls.kind, old_group["name"], request, {"kind": "restore_idp_members"}, group=sid)

    def prepare(self, apply, step, request, prior):
        # The member list as it is just before, kept for rollback.
        if prior and prior["status"] == PENDING:
            before = prior["inverse"]["users"]
        else:
            before = sorted(idp_of(apply.client).group(request["group"], include_users=False).get("users") or [])
        inverse = {"kind": "restore_idp_members", "group": request["group"], "users": before}
        return {**request, "users": [u for u in before if u not in set(request["remove"])]}, inverse

    def endpoint(self, client, request):
        return "PATCH", idp_of(client).group_path(request["group"])

    def send(self, client, request):
        return idp_of(client).set_members(request["group"], request["users"])

    def object_id(self, request, result):
        return request["group"]

    def reconcile(self, client, request, live, fresh):
        group = idp_of(client).group(request["group"], include_users=False)
        return request["group"] if group and not set(request["remove"]) & set(group.get("users") or []) else None

    def undo(self, job, action):
        idp = idp_of(job.client)
        uuid, before = action["request"]["group"], action["inverse"]["users"]
        group = idp.group(uuid, include_users=False)
        if group is None:  # deleted by `cutover --delete-groups` and re-created (new uuid) by its undo
            if job.dry_run and uuid in job.replaced_idp_groups():
                return job.mark(action, "restored with the group its re-create brings back")
            group = idp.group_by_name(action["target"], include_users=False)
        if group is None:
            return job.leave(action, f"{idp.name} group {action['target']!r} is gone: its {len(before)} earlier member(s) cannot be put back")
        uuid, live = group["pk"], set(group.get("users") or [])
        if live == set(before):
            return job.mark(action, "already restored")
        after = set(action["request"]["users"])
        # A removal left pending (a killed cutover; Okta removes members one by one) may have stopped
        # part way: anything between the members before and after it is its own doing.
        ours = live == after or (action["status"] == PENDING and after <= live <= set(before))
        if not ours and not job.force:
            return job.leave(action, f"membership of {idp.name} group {action['target']!r} changed since the cutover; use --force to restore it anyway")
        job.call(action, "PATCH", idp.group_path(uuid), lambda: idp.set_members(uuid, before),
                 f"put {len(set(before) - live)} member(s) back into {idp.name} group {action['target']!r}")


def push_again(job, action, group, user_pks, provider_pk):
    """Make the IdP push these members of a CF- group to Cloudflare once more. Only a membership
    add reaches a CF- group (Authentik's sync diffs members against Cloudflare's system group,
    which lists none), and an add is sent only for someone not in the group: so take them out, wait
    until the IdP has finished pushing that (the two pushes may otherwise land in either order),
    then put them back. They hold the group's role nowhere yet, so taking them out changes nothing."""
    idp = idp_of(job.client)
    uuid, pks = group["pk"], set(user_pks)
    users = list(group.get("users") or [u["pk"] for u in group.get("users_obj") or []])
    before = idp.group_pushes(provider_pk, uuid)
    job.call(action, "PATCH", idp.group_path(uuid), lambda: idp.set_members(uuid, [u for u in users if u not in pks]),
             f"take {len(pks)} member(s) out of {idp.name} group {group['name']!r} again", final=False)
    if not job.dry_run:
        left = wait_until(lambda: (idp.group_pushes_done(provider_pk, uuid, before), True), idp.sync_timeout,
                          f"{idp.name} to push the removal from {group['name']!r}")
        if left:
            raise SyncError(f"{idp.name} has not finished pushing the removal from {group['name']!r} within {idp.sync_timeout:g} s; "
                            "`vgmigrate idp check` shows its tasks. Run `vgmigrate rollback` again")
    job.call(action, "PATCH", idp.group_path(uuid), lambda: idp.set_members(uuid, sorted(set(users) | pks)),
             f"put {len(pks)} member(s) back into {idp.name} group {group['name']!r}, so {idp.name} pushes them to Cloudflare", final=False)


class DeleteIdpGroup(IdpStep):
    """Cutover `--delete-groups`: delete a CF- group in the IdP once its remove step left nobody in
    it. The IdP may push a DELETE, which Cloudflare refuses for a system group, and drops the
    group's link and its place in the push scope with it.

    The inverse keeps what rollback needs to rebuild the group as it was before the cutover: name,
    attributes, its earlier members, the Cloudflare id it pushed to, whether it was in the scope,
    and what else the IdP keeps on a group (`kept_fields`)."""

    kind = "delete_idp_group"
    label = "delete the emptied CF- group in the IdP"

    @classmethod
    def build(cls, remove_sid, name, request, after):
        return make_step(f"{remove_sid}.delete", cls.kind, name, request, {"kind": "recreate_idp_group"}, after, group=remove_sid)

    def prepare(self, apply, step, request, prior):
        if prior and prior["status"] == PENDING:
            return request, prior["inverse"]
        idp = idp_of(apply.client)
        group = idp.group(request["group"], include_users=False)
        if group is None or group.get("users") or group.get("children") or group.get("roles"):
            why = ("it is gone" if group is None else f"it has {len(group['users'])} member(s) again" if group.get("users")
                   else "it has child groups or roles, which a rollback could not restore")
            raise StepFailed(f"{idp.name} group {step['target']!r} was not deleted: {why}; the cutover stopped there. "
                             "Run `vgmigrate cutover` again (without --delete-groups to keep it)")
        # Its members before the cutover: the remove step of the same plan group journaled them
        # just before emptying it (this run), else an earlier cutover run did (`users_before`).
        removed = next((a for a in apply.inv.actions(apply.run_id, response=False)
                        if a["kind"] == RemoveIdpMembers.kind and a["status"] == DONE and a["step"] == plan_group_of(step["id"])), None)
        users = removed["inverse"]["users"] if removed else request.get("users_before")
        if users is None:
            raise StepFailed(f"{idp.name} group {step['target']!r} was not deleted: its earlier members are not in the journal")
        # An IdP drops a membership push whose group is gone by the time its worker runs it, and
        # Cloudflare refuses to delete a CF- group: so the removal must have landed first.
        removals = [a for a in removals_of(apply.inv, apply.plan["plan_id"]) if a["request"]["group"] == request["group"]]
        left = wait_until(lambda: (not (found := legacy_left(apply.client, removals)), found), idp.sync_timeout,
                          f"Cloudflare to drop the legacy roles of the members who left {step['target']!r}")
        if left:
            raise StepFailed(f"{idp.name} group {step['target']!r} was not deleted: Cloudflare still gives its role to {len(left)} member(s) "
                             f"who left it (first: {left[0][0]}), and deleting it now would lose that removal. Run `vgmigrate cutover "
                             "--delete-groups` again once `vgmigrate idp check` shows the pushes went through")
        provider = request["provider"]
        inverse = {
            "kind": "recreate_idp_group", "group": request["group"], "name": group["name"],
            "attributes": group.get("attributes") or {}, "kept": idp.kept_fields(group),
            "users": sorted(users), "provider": provider, "scim_id": idp.pushed_id(provider, request["group"]),
            "in_group_filters": request["group"] in idp.scope_of(provider),
        }
        return request, inverse

    def endpoint(self, client, request):
        return "DELETE", idp_of(client).group_path(request["group"])

    def send(self, client, request):
        try:
            return idp_of(client).delete_group(request["group"])
        except CloudflareError as err:
            # The HTTP layer resends a DELETE whose answer was lost; a 404 then may mean that the
            # first one did it: let the executor look instead of failing the step.
            if err.status == 404:
                raise OutcomeUnknown("DELETE", idp_of(client).group_path(request["group"]), err) from None
            raise

    def object_id(self, request, result):
        return request["group"]

    def reconcile(self, client, request, live, fresh):
        return request["group"] if idp_of(client).group(request["group"], include_users=False) is None else None

    def undo(self, job, action):
        """Re-create the group empty (nothing reaches Cloudflare yet: it has no link, and Cloudflare
        refuses a CF- name on POST /Groups anyway), link it to the same Cloudflare system group, put
        it back into the push scope, then its members: the IdP pushes those membership adds, which
        give the legacy roles back. Each call is journaled; the action counts as undone after the
        last, and a rerun skips what is already there."""
        idp = idp_of(job.client)
        rec = action["inverse"] or {}
        name, provider = rec.get("name") or action["target"], rec.get("provider")
        # Journals from before the adapters kept Authentik's fields at the top level.
        kept = rec.get("kept") or {"is_superuser": rec.get("is_superuser"), "parents": rec.get("parents") or []}
        if idp.group(action["request"]["group"], include_users=False) is not None:
            return job.mark(action, "not deleted (the group is still there)")
        group = idp.group_by_name(name, include_users=False)
        if job.dry_run:
            what = "re-create" if group is None else "finish re-creating"
            return job.call(action, "POST", idp.groups_path(), None,
                            f"{what} {idp.name} group {name!r} with its {len(rec['users'])} earlier member(s) and its link to Cloudflare")
        if group is None:
            made = {}
            job.call(action, "POST", idp.groups_path(), lambda: made.setdefault("group", idp.create_group(name, attributes=rec["attributes"])),
                     f"re-create {idp.name} group {name!r} (deleted by the cutover), empty for now", final=False)
            group = made["group"]
        elif (group.get("attributes") or {}) != rec["attributes"] and not job.force:
            return job.leave(action, f"an {idp.name} group named {name!r} exists again but is not the one the cutover deleted; "
                                     "use --force to restore its members and link anyway")
        uuid = group["pk"]
        if rec.get("scim_id") and idp.pushed_id(provider, uuid) != rec["scim_id"]:
            job.call(action, "POST", idp.link_path(provider), lambda: idp.link(provider, uuid, rec["scim_id"]),
                     f"link {idp.name} group {name!r} to Cloudflare group {rec['scim_id']} again", final=False)
        if rec.get("in_group_filters"):
            scope = idp.scope_of(provider)
            if uuid not in scope:
                refuse_cleanup(job.client, provider, scope + [uuid], f"putting {name!r} back into the push scope", StepError=VgmigrateError)
                job.call(action, "PATCH", idp.scope_path(provider), lambda: idp.set_scope(provider, scope + [uuid]),
                         f"put {idp.name} group {name!r} back into the push scope of provider {provider}", final=False)
        fields = idp.fields_to_restore(uuid, kept)
        if fields:
            job.call(action, "PATCH", idp.group_path(uuid), lambda: idp.update_group(uuid, **fields),
                     f"restore {', '.join(sorted(fields))} of {idp.name} group {name!r}", final=False)
        if set(idp.group(uuid, include_users=False).get("users") or []) == set(rec["users"]):
            return job.mark(action, f"{idp.name} group {name!r} re-created with its members")
        job.call(action, "PATCH", idp.group_path(uuid), lambda: idp.set_members(uuid, rec["users"]),
                 f"put {len(rec['users'])} member(s) back into {idp.name} group {name!r} ({idp.name} gives their roles back in Cloudflare)")


def refuse_cleanup(client, provider_pk, group_filters, doing, StepError=None):
    """An IdP that deletes, in Cloudflare, each linked group outside its push scope (Authentik from
    2026.2.2, on every save of the provider), policies and all: refuse an edit that would leave one out."""
    victims = idp_of(client).cleanup_victims(provider_pk, group_filters)
    if victims:
        raise (StepError or StepFailed)(
            f"{doing} would make {idp_of(client).name} delete {len(victims)} group(s) in Cloudflare ({', '.join(repr(v) for v in victims[:3])}): "
            "they are linked to Cloudflare but not in the provider's push scope, which this version deletes on every save of the provider. "
            "Add them to the scope first (`vgmigrate idp check` lists them), then run again")



def removals_of(inventory, plan_id):
    """The removals from CF- groups that this plan's cutovers made and no rollback undid."""
    return [a for run in inventory.runs("cutover") if run["plan_id"] == plan_id
            for a in inventory.actions(run["id"], response=False) if a["kind"] == RemoveIdpMembers.kind and a["status"] == DONE]


register(CreateIdpGroup(), ScopeIdpGroups(), SyncIdpGroup(), AttachIdpPolicy(), RemoveIdpMembers(), DeleteIdpGroup())
