"""Undo an apply run from its journal, newest step first.

Deletes what the run created, restores the membership and policies of groups it changed, skips
what is already undone, and leaves alone (unless forced) anything someone else changed since.
Rolling back twice is the same as once.
"""

import time

from .errors import CloudflareError, VgmigrateError
from .inventory import utcnow
from .runs import LOCK, UNDONE, RunResult, apply_run, new_run_id
from .steps import kind_of


class Rollback:
    def __init__(self, client, inventory, run_id=None, *, force=False, dry_run=False, progress=None):
        self.client, self.inv = client, inventory
        self.target = apply_run(inventory, run_id)
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
            self.live_rgs = {r["id"]: r for r in self.client.resource_groups()}
            self.deleted_groups = set()
            status = "failed"  # unless every action below was handled
            try:
                for action in sorted(actions, key=lambda a: a["seq"], reverse=True):
                    kind_of(action).undo(self, action)
                status = "done"
            except CloudflareError as err:
                raise VgmigrateError(f"rollback stopped: {err}. Run `vgmigrate rollback` again to continue") from None
            finally:
                if run_id:
                    self.inv.update_run(run_id, status=status, finished_at=utcnow(), message="; ".join(self.left_alone) or None)
                    remaining = [a for a in self.inv.actions(self.target["id"]) if a["status"] in ("done", "pending")]
                    # A partly undone run can be applied again: its undone steps are redone.
                    self.inv.update_run(self.target["id"], status="partly_rolled_back" if remaining else UNDONE)
        finally:
            if run_id:
                self.inv.release_lock(LOCK)
        status = "dry_run" if self.dry_run else ("partial" if self.left_alone else "rolled_back")
        return RunResult(run_id, status, calls=self.client.http.calls - calls0, seconds=time.monotonic() - started,
                         message="; ".join(self.left_alone), left_alone=self.left_alone)

    # Each step kind's undo (steps.py) either calls the API through `call` (journaled in the
    # rollback run) or only marks the action with `mark`, or leaves it alone with `leave`.

    def members_actions(self, group_id):
        return [a for a in self.inv.actions(self.target["id"]) if a["kind"] == "add_members" and a["request"]["group"] == group_id and a["status"] in ("done", "pending")]

    # --- journal ----------------------------------------------------------------------------

    def call(self, action, method, path, send, description):
        if self.dry_run:
            self.planned.append(description)
            self.progress(action, f"would {description}")
            return
        self.seq += 1
        self.inv.journal_pending(self.run_id, self.seq, action["step"], f"undo_{action['kind']}", action["target"], method, path, {"undoes": f"{action['run_id']}#{action['seq']}"}, None)
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

    def mark(self, action, why):
        if self.dry_run:
            return
        self.inv.mark_undone(action["run_id"], action["seq"], why)
        self.progress(action, why)

    def leave(self, action, why):
        self.left_alone.append(why)
        self.progress(action, why)


def rollback_run(client, inventory, run_id=None, **kwargs):
    return Rollback(client, inventory, run_id, **kwargs).run()
