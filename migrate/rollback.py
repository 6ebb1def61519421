"""Undo an apply run from its journal, newest step first.

Deletes what the run created, restores the membership and policies of groups it changed, skips
what is already undone, and leaves alone (unless forced) anything someone else changed since.
Rolling back twice is the same as once.
"""

import threading
import time

from .cloudflare import run_parallel
from .errors import CloudflareError, VgmigrateError
from .codec import utcnow
from .runs import DONE, DRY_RUN, FAILED, INTERRUPTED, LOCK, NOTHING_TO_DO, PARTIAL, PARTLY_UNDONE, PENDING, RunResult, UNDONE, new_run_id, rollback_target, undone_message
from .cutover import roles_not_back
from .steps import AddMembers, DeleteIdpGroup, RemoveIdpMembers, is_kind, kind_of, plan_group_of, push_again
from .idp.base import idp_of
from .waiting import wait_until


class Rollback:
    def __init__(self, client, inventory, run_id=None, *, force=False, dry_run=False, progress=None, parallel=None):
        self.client, self.inv = client, inventory
        self.target = rollback_target(inventory, run_id)
        if self.target["account_id"] != client.account_id:
            raise VgmigrateError(f"run {self.target['id']} was made in account {self.target['account_id']}, not {client.account_id}")
        self.force, self.dry_run = force, dry_run
        self.progress = progress or (lambda action, outcome: None)
        self.planned = []  # (description) for --dry-run
        self.done = []  # (description) of each call made, newest step first
        self.left_alone = []
        self.parallel = parallel or client.parallel  # independent groups undone at once
        self._lock = threading.Lock()
        self._note_keys = {"planned": [], "done": [], "left_alone": []}
        self._members_actions = None
        self._marked = set()

    def run(self):
        started, calls0 = time.monotonic(), self.client.calls
        self.journal = self.inv.actions(self.target["id"], response=False)
        actions = [a for a in self.journal if a["status"] in (DONE, PENDING)]
        self.actions = actions
        if not actions and not self._cutover_actions():
            return RunResult(None, NOTHING_TO_DO, message=f"run {self.target['id']} has nothing left to undo")
        run_id = None
        if not self.dry_run:
            run_id = new_run_id("rollback")
            self.inv.acquire_lock(LOCK, run_id)
        try:
            if run_id:
                self.inv.start_run({"id": run_id, "kind": "rollback", "undoes": self.target["id"], "plan_id": self.target["plan_id"], "account_id": self.client.account_id})
            self.run_id, self.seq = run_id, 0
            listing = self.client.user_groups().start()  # its pages and the resource groups, concurrently
            self.live_rgs = {r["id"]: r for r in self.client.resource_groups()}
            self.live_groups = {g["id"]: g for g in listing}
            self.deleted_groups = set()
            status = FAILED  # unless every action below was handled
            try:
                # Newest first within each group (its member restores before its delete); groups
                # are independent, so they go in parallel; resource groups last, once every group
                # that might still use them is done.
                # A cutover of this run goes first: its members are back in their CF- groups
                # before the User Groups that replaced them go.
                for action in self._cutover_actions():
                    kind_of(action).undo(self, action)
                if actions and not self.dry_run:
                    self._legacy_roles_back()
                groups, last = _by_group(actions)
                run_parallel(lambda group: [kind_of(a).undo(self, a) for a in group], groups, self.parallel)
                for action in last:
                    kind_of(action).undo(self, action)
                status = DONE
            except CloudflareError as err:
                raise VgmigrateError(f"rollback stopped: {err}. Run `vgmigrate rollback` again to continue") from None
            except (KeyboardInterrupt, SystemExit):  # Ctrl-C: the journal says how far it got
                status = INTERRUPTED
                raise
            finally:
                self._sort_notes()
                if run_id:
                    finished = utcnow()
                    self.inv.update_run(run_id, status=status, finished_at=finished, message="; ".join(self.left_alone) or None)
                    for cutover in self._cutovers():
                        left = [a for a in self.inv.actions(cutover["id"], response=False) if a["status"] in (DONE, PENDING)]
                        self.inv.update_run(cutover["id"], status=PARTLY_UNDONE if left else UNDONE)
                    remaining = [a for a in self.inv.actions(self.target["id"], response=False) if a["status"] in (DONE, PENDING)]
                    # A partly undone run can be applied again: its undone steps are redone.
                    undone = "partly_rolled_back" if remaining else UNDONE
                    self.inv.update_run(self.target["id"], status=undone,
                                        message=undone_message(self.target["message"], undone, finished, run_id))
        finally:
            if run_id:
                self.inv.release_lock(LOCK)
        message = "; ".join(self.left_alone)
        if self.dry_run:
            status = DRY_RUN
        else:  # what the journal says, so the exit code, `history` and `status` agree
            status = PARTIAL if self.left_alone or remaining else UNDONE
            if remaining and not self.left_alone:
                message = f"{len(remaining)} journaled action(s) are not undone yet"
        return RunResult(run_id, status, calls=self.client.calls - calls0, seconds=time.monotonic() - started,
                         message=message, left_alone=self.left_alone)

    # Each step kind's undo (migrate/steps/) either calls the API through `call` (journaled in the
    # rollback run) or only marks the action with `mark`, or leaves it alone with `leave`.

    def live_actions(self):
        """How many of the run's journal actions may still be live: a progress bar's total."""
        return self.inv.live_actions(self.target["id"])

    def chosen_text(self, run_id):
        """How the run was chosen for the user (said in the preview, the question and the last line)."""
        return "" if run_id else f", the newest apply whose changes are still live (started {self.target['started_at']})"

    def preview(self):
        """What a dry run found, one line each: what it would undo, then what it would leave alone."""
        return [f"would {line}" for line in self.planned] + [f"would leave: {line}" for line in self.left_alone]

    def members_actions(self, group_id):
        with self._lock:  # the journal is read once, not once per group
            if self._members_actions is None:
                self._members_actions = {}
                for a in self.inv.actions(self.target["id"], response=False):
                    if is_kind(a, AddMembers) and a["status"] in (DONE, PENDING):
                        self._members_actions.setdefault(a["request"]["group"], []).append(a)
            return [a for a in self._members_actions.get(group_id, []) if a["seq"] not in self._marked]

    def _legacy_roles_back(self):
        """Before any User Group goes: everyone a cutover took out of a CF- group holds its role in
        Cloudflare again. The IdP pushes the restored memberships later, from its worker, so
        wait for them; whom they have not reached by the deadline, push once more (in an order
        that does not depend on the IdP's), and wait again. If the role is still missing, stop
        here, with the new groups still granting it."""
        removals = [a for run in self._cutovers() for a in self.inv.actions(run["id"], response=False)
                    if a["kind"] == RemoveIdpMembers.kind and a["status"] != FAILED]
        if not removals:
            return
        idp = idp_of(self.client)

        def check():
            missing = roles_not_back(self.client, removals)
            return not missing, missing

        what = "Cloudflare to give the legacy roles back"
        still = wait_until(check, idp.sync_timeout, what)
        if still:
            provider = (self.inv.plan_body(self.target["plan_id"]) or {}).get("idp", {}).get("provider", {}).get("pk")
            for action, group, pks in still:
                push_again(self, action, group, pks, provider)
            still = wait_until(check, idp.sync_timeout, what)
        if still:
            action, group, pks = still[0]
            raise VgmigrateError(f"rollback stopped before removing any User Group: Cloudflare has not given {len(pks)} member(s) of "
                                 f"{group['name']!r} its role back ({idp.name}'s push failed or is still being retried; `vgmigrate idp check` "
                                 "shows why). Fix it, then run `vgmigrate rollback` again")

    def _cutovers(self):
        return [r for r in self.inv.runs("cutover") if r["plan_id"] == self.target["plan_id"]]

    def _cutover_actions(self):
        """Undoable actions of this run's cutovers, newest first."""
        return [a for run in reversed(self._cutovers()) for a in reversed(self.inv.actions(run["id"]))
                if a["status"] in (DONE, PENDING)]

    def replaced_idp_groups(self):
        """{old uuid: name} of the CF- groups this plan's cutovers deleted (`--delete-groups`): their
        undo re-creates them under a new uuid."""
        return {a["inverse"]["group"]: a["inverse"]["name"] for run in self._cutovers() for a in self.inv.actions(run["id"], response=False)
                if is_kind(a, DeleteIdpGroup) and a["inverse"] and a["status"] != FAILED}

    def sibling(self, action, kind):
        """The journaled action of `kind` in the same plan group as `action`, if any, undone or
        not: what it sent and made stays true after its undo (an earlier, stopped rollback may
        have marked it, and the action still needs it)."""
        group = plan_group_of(action["step"])
        found = [a for a in self.journal if a["kind"] == kind and plan_group_of(a["step"]) == group]
        # A step retried after a failure is journaled again: the attempt that made its object, newest.
        return max(found, key=lambda a: (a.get("object_id") is not None, a["seq"])) if found else None

    def _note(self, which, action, text):
        """Add to `planned` or `left_alone`; `_sort_notes` puts them in newest-first order, as if
        the groups had been undone one after the other."""
        with self._lock:
            getattr(self, which).append(text)
            self._note_keys[which].append(-action["seq"])

    def _sort_notes(self):
        for which, keys in self._note_keys.items():
            notes = getattr(self, which)
            notes[:] = [text for _, text in sorted(zip(keys, notes), key=lambda pair: pair[0])]
            keys[:] = sorted(keys)

    # --- journal ----------------------------------------------------------------------------

    def call(self, action, method, path, send, description, final=True):
        """final=False: one of several calls that undo `action`; only the last marks it undone,
        so an interrupted undo is taken up again by the next rollback."""
        if self.dry_run:
            self._note("planned", action, description)
            if final:
                self.progress(action, f"would {description}")
            return
        with self._lock:
            self.seq += 1
            seq = self.seq
        self.inv.journal_pending(self.run_id, seq, action["step"], f"undo_{action['kind']}", action["target"], method, path, {"undoes": f"{action['run_id']}#{action['seq']}"}, None)
        try:
            result = send()
        except CloudflareError as err:
            if err.status == 404:  # already gone: the goal is reached
                result = None
            else:
                self.inv.journal_update(self.run_id, seq, FAILED, error=str(err), http_status=err.status, cf_ray=err.ray)
                raise
        sent_by = kind_of(action).transport(self.client)
        self.inv.journal_update(self.run_id, seq, DONE, response=result, http_status=sent_by.last_status, cf_ray=sent_by.last_ray)
        self._note("done", action, description)
        if final:
            self.inv.mark_undone(action["run_id"], action["seq"], f"{description} (rollback {self.run_id})")
            self._marked.add(action["seq"])
            self.progress(action, description)

    def mark(self, action, why):
        if self.dry_run:
            self.progress(action, why)  # counted in the preview's progress too
            return
        self.inv.mark_undone(action["run_id"], action["seq"], why)
        self._marked.add(action["seq"])
        self.progress(action, why)

    def leave(self, action, why):
        self._note("left_alone", action, why)
        self.progress(action, why)


def _by_group(actions):
    """(per plan group, its actions newest first, groups in order of their newest action; the
    shared steps, resource group and sync scope, newest first)."""
    groups, last = {}, []
    for action in sorted(actions, key=lambda a: a["seq"], reverse=True):
        group = plan_group_of(action["step"])
        if group is None:
            last.append(action)
        else:
            groups.setdefault(group, []).append(action)
    return list(groups.values()), last


def rollback_run(client, inventory, run_id=None, **kwargs):
    return Rollback(client, inventory, run_id, **kwargs).run()
