"""Undo an apply run from its journal, newest step first.

Deletes what the run created, restores the membership and policies of groups it changed, skips
what is already undone, and leaves alone (unless forced) anything someone else changed since.
Rolling back twice is the same as once.
"""

import time

from .errors import CloudflareError, VgmigrateError
from .executor import LOCK, RunResult, new_run_id, same_policies
from .inventory import utcnow


def latest_apply_run(inventory):
    """The newest apply run not yet rolled back; else the newest one (so rolling back twice is a no-op)."""
    runs = inventory.runs("apply")
    if not runs:
        raise VgmigrateError("no apply run in this inventory; `vgmigrate history` lists the runs")
    live = [r for r in runs if r["status"] != "rolled_back"]
    return (live or runs)[-1]


class Rollback:
    def __init__(self, client, inventory, run_id=None, *, force=False, dry_run=False, progress=None):
        self.client, self.inv = client, inventory
        self.target = inventory.run(run_id) if run_id else latest_apply_run(inventory)
        if not self.target or self.target["kind"] != "apply":
            raise VgmigrateError(f"no apply run {run_id!r}; `vgmigrate history` lists the runs")
        if self.target["account_id"] != client.account_id:
            raise VgmigrateError(f"run {self.target['id']} was made in account {self.target['account_id']}, not {client.account_id}")
        self.force, self.dry_run = force, dry_run
        self.progress = progress or (lambda action, outcome: None)
        self.planned = []  # (description) for --dry-run
        self.left_alone = []

    def run(self):
        started, calls0 = time.monotonic(), self.client.http.calls
        actions = [a for a in self.inv.actions(self.target["id"]) if a["status"] in ("done", "pending")]
        if not actions:
            return RunResult(None, "nothing_to_do", message=f"run {self.target['id']} has nothing left to undo")
        run_id = None
        if not self.dry_run:
            run_id = new_run_id("rollback")
            self.inv.acquire_lock(LOCK, run_id)
        try:
            if run_id:
                self.inv.start_run({"id": run_id, "kind": "rollback", "undoes": self.target["id"], "plan_id": self.target["plan_id"], "account_id": self.client.account_id})
            self.run_id, self.seq = run_id, 0
            self.live_groups = {g["id"]: g for g in self.client.user_groups()}
            self.live_by_name = {g["name"]: g for g in self.live_groups.values()}
            self.live_rgs = {r["id"]: r for r in self.client.resource_groups()}
            self.deleted_groups = set()
            status = "failed"  # unless every action below was handled
            try:
                for action in sorted(actions, key=lambda a: a["seq"], reverse=True):
                    self._undo(action)
                status = "done"
            except CloudflareError as err:
                raise VgmigrateError(f"rollback stopped: {err}. Run `vgmigrate rollback` again to continue") from None
            finally:
                if run_id:
                    self.inv.update_run(run_id, status=status, finished_at=utcnow(), message="; ".join(self.left_alone) or None)
                    remaining = [a for a in self.inv.actions(self.target["id"]) if a["status"] in ("done", "pending")]
                    # A partly undone run can be applied again: its undone steps are redone.
                    self.inv.update_run(self.target["id"], status="partly_rolled_back" if remaining else "rolled_back")
        finally:
            if run_id:
                self.inv.release_lock(LOCK)
        status = "dry_run" if self.dry_run else ("partial" if self.left_alone else "rolled_back")
        return RunResult(run_id, status, calls=self.client.http.calls - calls0, seconds=time.monotonic() - started,
                         message="; ".join(self.left_alone), left_alone=self.left_alone)

    # Each undo either calls the API (journaled in the rollback run) or only marks the action.

    def _undo(self, action):
        kind = action["kind"]
        if kind == "create_user_group":
            self._undo_create_group(action)
        elif kind == "add_members":
            self._undo_members(action)
        elif kind == "adopt_user_group":
            self._undo_adopt(action)
        elif kind == "create_resource_group":
            self._undo_resource_group(action)

    def _group_of(self, action):
        """The live group a journaled create refers to; a pending create is looked up by name."""
        if action["object_id"]:
            return self.live_groups.get(action["object_id"])
        live = self.live_by_name.get(action["request"]["name"])
        if live and same_policies(live.get("policies"), action["request"]["policies"]):
            return live
        return None

    def _undo_create_group(self, action):
        group = self._group_of(action)
        if group is None:
            return self._mark(action, "already gone")
        changed = not same_policies(group.get("policies"), action["request"]["policies"])
        added = {m for a in self._members_actions(group["id"]) for m in a["request"]["members"]}
        live_members = {m["id"] for m in self.client.user_group_members(group["id"])}
        extra = live_members - added
        if (changed or extra) and not self.force:
            why = "its policies changed" if changed else f"{len(extra)} member(s) were added by someone else"
            return self._leave(action, f"User Group {group['name']!r} ({group['id']}) left in place: {why}; use --force to delete it anyway")
        self._call(action, "DELETE", f"user_groups/{group['id']}", lambda: self.client.delete_user_group(group["id"]), f"delete User Group {group['name']!r}")
        self.deleted_groups.add(group["id"])
        for members_action in self._members_actions(group["id"]):
            self._mark(members_action, "removed with the group")

    def _members_actions(self, group_id):
        return [a for a in self.inv.actions(self.target["id"]) if a["kind"] == "add_members" and a["request"]["group"] == group_id and a["status"] in ("done", "pending")]

    def _undo_members(self, action):
        inverse = action["inverse"] or {}
        group_id = action["request"]["group"]
        if inverse.get("kind") == "covered_by_delete":
            return  # undone when its group is deleted (the create is older, so it comes next)
        if group_id not in self.live_groups:
            return self._mark(action, "group already gone")
        prior = set(inverse["members"])
        live = {m["id"] for m in self.client.user_group_members(group_id)}
        expected = prior | set(action["request"]["members"])
        if live == prior:
            return self._mark(action, "already restored")
        if live != expected and not self.force:
            return self._leave(action, f"membership of User Group {group_id} changed since the run; use --force to restore it anyway")
        self._call(action, "PUT", f"user_groups/{group_id}/members", lambda: self.client.replace_user_group_members(group_id, sorted(prior)),
                   f"restore the {len(prior)} earlier member(s) of User Group {action['target']!r}")

    def _undo_adopt(self, action):
        gid = action["request"]["id"]
        live = self.live_groups.get(gid)
        prior = action["inverse"]["policies"]
        if live is None:
            return self._mark(action, "group already gone")
        if same_policies(live.get("policies"), prior):
            return self._mark(action, "already restored")
        if not same_policies(live.get("policies"), action["request"]["policies"]) and not self.force:
            return self._leave(action, f"policies of User Group {live['name']!r} changed since the run; use --force to restore them anyway")
        self._call(action, "PUT", f"user_groups/{gid}", lambda: self.client.update_user_group(gid, policies=prior), f"restore the policies of User Group {live['name']!r}")
        live["policies"] = prior  # so the resource group check below sees the restored set

    def _undo_resource_group(self, action):
        rg_id = action["object_id"]
        if rg_id is None:
            matches = [r for r in self.live_rgs.values() if (r.get("scope") or {}).get("key") == action["request"]["scope"]["key"]]
            rg_id = matches[0]["id"] if matches else None
        if rg_id is None or rg_id not in self.live_rgs:
            return self._mark(action, "already gone")
        users = [
            g["name"] for g in self.live_groups.values()
            if g["id"] not in self.deleted_groups
            and any(rg["id"] == rg_id for p in g.get("policies") or [] for rg in p.get("resource_groups") or [])
        ]
        if users:
            return self._leave(action, f"resource group {rg_id} left in place: still used by {', '.join(sorted(users)[:5])}")
        self._call(action, "DELETE", f"resource_groups/{rg_id}", lambda: self.client.delete_resource_group(rg_id), f"delete resource group {rg_id}")

    # --- journal ----------------------------------------------------------------------------

    def _call(self, action, method, path, send, description):
        if self.dry_run:
            self.planned.append(description)
            self.progress(action, f"would {description}")
            return
        self.seq += 1
        full_path = f"/accounts/{self.client.account_id}/iam/{path}"
        self.inv.journal_pending(self.run_id, self.seq, action["step"], f"undo_{action['kind']}", action["target"], method, full_path, {"undoes": f"{action['run_id']}#{action['seq']}"}, None)
        try:
            result = send()
        except CloudflareError as err:
            if err.status == 404:  # already gone: the goal is reached
                result = None
            else:
                self.inv.journal_update(self.run_id, self.seq, "failed", error=str(err), http_status=err.status, cf_ray=err.ray)
                raise
        self.inv.journal_update(self.run_id, self.seq, "done", response=result, http_status=self.client.last_status, cf_ray=self.client.last_ray)
        self.inv.mark_undone(action["run_id"], action["seq"], f"{description} (rollback {self.run_id})")
        self.progress(action, description)

    def _mark(self, action, why):
        if self.dry_run:
            return
        self.inv.mark_undone(action["run_id"], action["seq"], why)
        self.progress(action, why)

    def _leave(self, action, why):
        self.left_alone.append(why)
        self.progress(action, why)


def rollback_run(client, inventory, run_id=None, **kwargs):
    return Rollback(client, inventory, run_id, **kwargs).run()
