"""Apply a plan and roll a run back: journaled, locked, resumable.

Every call is written to the journal as `pending` before it is sent and `done`/`failed` after,
each in its own transaction. A `pending` row found on the next run is reconciled against live
state before anything is retried, so an interrupted run is finished, never repeated.
"""

import threading
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

from . import iam
from .errors import CloudflareError, OutcomeUnknown, SyncError, VgmigrateError
from .codec import utcnow
from .planfile import inventory_row
from .runs import DONE, FAILED, INTERRUPTED, LOCK, NOTHING_TO_DO, PENDING, RUNNING, RunResult, current_apply_of_plan, new_run_id
from .idp.base import idp_of
from .steps import StepFailed, kind_of


# --- pure helpers ---------------------------------------------------------------------------


def check_plan_matches(plan, account_id, scan):
    """Refuse a plan for another account or made from an inventory other than this one."""
    if plan["account"]["id"] != account_id:
        raise VgmigrateError(
            f"this plan is for account {plan['account']['id']}, not {account_id}; use the right --account or plan again"
        )
    if scan is None or scan["fingerprint"] != plan["scan"]["fingerprint"]:
        raise VgmigrateError(
            f"this plan was made from scan {plan['scan']['id']} of another inventory; use the --db it was made with, or scan and plan again"
        )
    if plan.get("conflicts"):
        names = ", ".join(c["name"] for c in plan["conflicts"])
        raise VgmigrateError(f"the plan has unresolved name conflicts ({names}); plan again with --on-existing adopt or suffix")


def stale_reasons(plan, live_groups, live_rgs, adopted_members, journal, account_id):
    """What moved since the plan was made. Objects this plan's own journal accounts for are ours.

    adopted_members: live member ids of each group the plan adopts. A member who joined one since
    the plan would gain its role without the approver having seen it, so that is stale too.
    """
    ours = {iam.name_key(a["target"]) for a in journal.values() if a["status"] in (DONE, PENDING)}
    reasons = []
    by_name = {iam.name_key(g["name"]) for g in live_groups}
    by_id = {g["id"]: g for g in live_groups}
    for name in plan["expected"]["absent_names"]:
        if iam.name_key(name) in by_name and iam.name_key(name) not in ours:
            reasons.append(f"a User Group named {name!r} now exists")
    for gid, before in plan["expected"]["adopted"].items():
        live = by_id.get(gid)
        if live is None:
            reasons.append(f"User Group {before['name']!r} ({gid}) is gone")
            continue
        if iam.name_key(before["name"]) in ours:
            continue
        if not iam.same_policies(live.get("policies"), before["policies"]):
            # Policies, not modified_on: a rollback of an earlier attempt restores the same policies.
            reasons.append(f"the policies of User Group {before['name']!r} changed since the plan was made")
        planned = {m["id"] for g in plan["groups"] if g.get("existing_id") == gid for m in g["members"]}
        joined = set(adopted_members.get(gid, ())) - set(before.get("members", ())) - planned
        if joined:
            reasons.append(f"{len(joined)} member(s) joined User Group {before['name']!r} since the plan was made and would gain its role")
    rg = plan["expected"]["resource_group"]
    if "id" in rg and not any(r["id"] == rg["id"] for r in live_rgs):
        reasons.append(f"resource group {rg['id']} is gone")
    if "absent_scope_key" in rg and iam.name_key(rg["absent_scope_key"]) not in ours:
        if iam.account_wide_ids(live_rgs, account_id):
            reasons.append("an account-wide resource group now exists")
    return reasons


def resolve_refs(value, ids):
    """Replace "$<step id>" strings with the ids those steps produced."""
    if isinstance(value, str) and value.startswith("$"):
        return ids[value[1:]]
    if isinstance(value, list):
        return [resolve_refs(v, ids) for v in value]
    if isinstance(value, dict):
        return {k: resolve_refs(v, ids) for k, v in value.items()}
    return value


# --- apply ----------------------------------------------------------------------------------


class Apply:
    def __init__(self, client, inventory, plan, *, parallel=4, progress=None, hook=None):
        self.client, self.inv, self.plan = client, inventory, plan
        self.parallel = max(1, parallel)
        self.progress = progress or (lambda step, outcome: None)
        self.hook = hook or (lambda point, step_id: None)
        self.steps = {s["id"]: s for s in plan["steps"]}
        self.seq = {s["id"]: n for n, s in enumerate(plan["steps"], 1)}
        self.ids = {}
        self.created_here = set()
        self.counts = {}
        self._lock = threading.Lock()

    def run(self):
        started, calls0 = time.monotonic(), self.client.calls
        check_plan_matches(self.plan, self.client.account_id, self.inv.scan(self.plan["scan"]["id"]))
        run = current_apply_of_plan(self.inv, self.plan["plan_id"])
        if run and run["status"] == DONE:
            return RunResult(run["id"], NOTHING_TO_DO, message=f"plan already applied by run {run['id']}")
        if not self.plan["steps"]:  # a run with nothing in it would be what a bare `rollback` undoes
            return RunResult(None, NOTHING_TO_DO, message="the plan has no steps: nothing to apply, and no run was recorded")
        run_id = run["id"] if run else new_run_id("apply")
        self.inv.acquire_lock(LOCK, run_id)
        try:
            journal = {a["step"]: a for a in self.inv.actions(run_id)} if run else {}
            listing = self.client.user_groups().start()  # its pages and the resource groups, concurrently
            live_rgs = self.client.resource_groups()
            live_groups = list(listing)
            live_ids = {g["id"] for g in live_groups}
            adopted_members = {
                gid: [m["id"] for m in self.client.user_group_members(gid)]
                for gid in self.plan["expected"]["adopted"] if gid in live_ids
            }
            reasons = stale_reasons(self.plan, live_groups, live_rgs, adopted_members, journal, self.client.account_id)
            if self.plan["options"].get("mode") == "idp":
                ours = {iam.name_key(a["target"]) for a in journal.values() if a["status"] in (DONE, PENDING)}
                reasons += idp_of(self.client).stale_reasons(self.plan, ours)
            if reasons:
                raise VgmigrateError(f"plan is stale: {'; '.join(reasons)}. Scan and plan again")
            if not self.inv.has_plan(self.plan["plan_id"]):  # verify and export read the plan applied
                self.inv.save_plan(inventory_row(self.plan))
            if not run:
                self.inv.start_run({"id": run_id, "kind": "apply", "plan_id": self.plan["plan_id"], "account_id": self.client.account_id})
            else:
                self.inv.update_run(run_id, status=RUNNING, message=None)
            self.run_id, self.journal = run_id, journal
            self.live = {"groups": live_groups, "rgs": live_rgs}
            status, message = self._carry_out("run apply with the same plan to finish")
        finally:
            self.inv.release_lock(LOCK)
        return RunResult(run_id, status, self.counts, self.client.calls - calls0, time.monotonic() - started, message)

    def _carry_out(self, resume):
        """Run the steps and record how the run ended: (status, message)."""
        status, message = DONE, "all steps done"
        try:
            self._execute()
        except StepFailed as err:
            status, message = FAILED, str(err)
        except BaseException as err:  # Ctrl-C, or anything unexpected: the journal says how far it got
            status, message = INTERRUPTED, f"stopped by {type(err).__name__}; {resume}"
            raise
        finally:
            self.inv.update_run(self.run_id, status=status, message=message, finished_at=utcnow())
        return status, message

    def _execute(self):
        """Run steps as their dependencies finish, at most `parallel` in flight. Nothing is queued
        beyond that, so after an interrupt or a failure only the calls already sent complete
        (and are journaled) before the run stops."""
        blockers = {sid: len(step["after"]) for sid, step in self.steps.items()}
        dependents = {}
        for sid, step in self.steps.items():
            for before in step["after"]:
                dependents.setdefault(before, []).append(sid)
        ready = deque(sid for sid, n in blockers.items() if n == 0)
        running, failure = {}, None
        with ThreadPoolExecutor(max_workers=self.parallel) as pool:
            while ready or running:
                while failure is None and ready and len(running) < self.parallel:
                    sid = ready.popleft()
                    running[pool.submit(self._step, self.steps[sid])] = sid
                if not running:
                    break
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    sid = running.pop(future)
                    try:
                        future.result()
                    except StepFailed as err:
                        failure = failure or err
                        continue
                    for after in dependents.get(sid, []):
                        blockers[after] -= 1
                        if blockers[after] == 0:
                            ready.appendleft(after)  # finish a group before starting more
        if failure:
            raise failure

    def _step(self, step):
        sid, kind = step["id"], kind_of(step)
        prior = self.journal.get(sid)
        if prior and prior["status"] == DONE:
            self._finish(step, prior["object_id"], "already done")
            return
        request = resolve_refs(step["request"], self.ids)
        if prior and prior["status"] == PENDING:
            found = kind.reconcile(self.client, prior["request"] or request, self.live, fresh=False)  # what was sent
            if found:
                self.inv.journal_update(self.run_id, self.seq[sid], DONE, object_id=found, error="reconciled with live state after an interrupted run")
                self._finish(step, found, "reconciled")
                return
        request, inverse = kind.prepare(self, step, request, prior)
        method, path = kind.endpoint(self.client, request)
        self.inv.journal_pending(self.run_id, self.seq[sid], sid, kind.kind, step["target"], method, path, kind.journaled(request, request), inverse)
        self.hook("before_call", sid)
        found = None
        try:
            result = kind.send(self.client, request)
        except OutcomeUnknown:
            result = None
            found = self._after_lost_response(step, kind, request)
        except (CloudflareError, SyncError) as err:
            found = kind.already_done(self.client, request, err)
            if found:  # refused because an earlier attempt of this run landed late
                self.inv.journal_update(self.run_id, self.seq[sid], DONE, object_id=found, error=f"already done: {kind.journaled(str(err), request)}")
                self._finish(step, found, "reconciled")
                return
            self.inv.journal_update(self.run_id, self.seq[sid], FAILED, error=kind.journaled(str(err), request), http_status=err.status, cf_ray=err.ray)
            raise StepFailed(
                f"step {sid} ({kind.label} {step['target']!r}) failed: {err}. Fix the cause and run apply again, or `vgmigrate rollback`"
            ) from None
        self.hook("after_call", sid)
        object_id = found or kind.object_id(request, result)
        self.inv.journal_update(
            self.run_id,
            self.seq[sid],
            DONE,
            object_id=object_id,
            response=kind.journaled(result, request),
            http_status=kind.transport(self.client).last_status,
            cf_ray=kind.transport(self.client).last_ray,
        )
        self._finish(step, object_id, "done")

    def _finish(self, step, object_id, outcome):
        with self._lock:
            self.ids[step["id"]] = object_id
            if kind_of(step).makes_group:  # it starts with only what this run puts in it
                self.created_here.add(object_id)
            self.counts[outcome] = self.counts.get(outcome, 0) + 1
        self.progress(step, outcome)

    def _after_lost_response(self, step, kind, request):
        """A write whose outcome is unknown is never sent again in this run (the HTTP layer's rule
        too): if live state shows it took effect it is done, else it stays pending and the next
        run reconciles it before anything is sent."""
        found = kind.reconcile(self.client, request, self.live, fresh=True)
        if found:
            return found
        self.inv.journal_update(self.run_id, self.seq[step["id"]], PENDING, error="response lost and the change not found yet")
        raise StepFailed(f"step {step['id']} ({kind.label} {step['target']!r}): the outcome is unknown; run apply again to check and finish")


class JournaledRun(Apply):
    """Steps worked out when the command runs rather than read from an approved plan file (the
    cutover, `idp check --fix`): journaled and locked like apply, one step at a time; running the
    command again finishes an interrupted one."""

    kind = ""
    resume = ""  # how to finish or undo an interrupted run

    def __init__(self, client, inventory, steps, plan_id=None, progress=None):
        super().__init__(client, inventory, {"plan_id": plan_id, "steps": steps}, parallel=1, progress=progress)

    def run(self):
        started, calls0 = time.monotonic(), self.client.calls
        run_id = new_run_id(self.kind)
        self.inv.acquire_lock(LOCK, run_id)
        try:
            self.inv.start_run({"id": run_id, "kind": self.kind, "plan_id": self.plan["plan_id"], "account_id": self.client.account_id})
            self.run_id, self.journal, self.live = run_id, {}, {}
            status, message = self._carry_out(self.resume)
        finally:
            self.inv.release_lock(LOCK)
        return RunResult(run_id, status, self.counts, self.client.calls - calls0, time.monotonic() - started, message)


def apply_plan(client, inventory, plan, **kwargs):
    return Apply(client, inventory, plan, **kwargs).run()
