"""Runs and their state: ids, statuses, which run is current, step counts, and what to do next.

`status`, `history`, `verify`, `rollback` and `apply` all read runs through here, so they agree on
which run a command means and what its state is.
"""

from collections import Counter
from dataclasses import dataclass, field

from .errors import VgmigrateError
from .codec import utcnow

# The one home of run and journal statuses: every other module uses these names.
# runs.status: running | done | failed | interrupted (apply) and rolled_back | partly_rolled_back
# once a rollback undid all or part of an apply; a rollback run is running | done | failed |
# interrupted (Ctrl-C). actions.status: pending (written before the call) | done | failed |
# rolled_back. A RunResult may also say nothing_to_do, partial (rollback left some alone) or dry_run.
PENDING = "pending"
RUNNING = "running"
DONE = "done"
FAILED = "failed"
INTERRUPTED = "interrupted"
UNDONE = "rolled_back"
PARTLY_UNDONE = "partly_rolled_back"
NOTHING_TO_DO = "nothing_to_do"
PARTIAL = "partial"
DRY_RUN = "dry_run"
LOCK = "migration"


@dataclass
class RunResult:
    run_id: str | None
    status: str  # done | nothing_to_do | failed | interrupted | rolled_back | partial | dry_run
    counts: dict = field(default_factory=dict)  # step outcome -> number
    calls: int = 0
    seconds: float = 0.0
    message: str = ""
    left_alone: list = field(default_factory=list)  # rollback: objects changed by someone else


def new_run_id(kind):
    return f"{kind}-{utcnow().replace(':', '').replace('-', '').replace('.', '')}"


def current_apply_of_plan(inventory, plan_id):
    """The run carrying out this plan that is not rolled back, if any (apply resumes it)."""
    runs = [r for r in inventory.runs_for_plan(plan_id) if r["status"] != UNDONE]
    return runs[-1] if runs else None


def latest_apply_run(inventory):
    """The newest apply run not yet rolled back; else the newest one (so rolling back twice is a no-op)."""
    runs = inventory.runs("apply")
    if not runs:
        raise VgmigrateError(
            f"no plan has been applied from {inventory.path} yet, so there is nothing to verify or roll back; "
            "apply one first (`vgmigrate plan --out plan.json`, then `vgmigrate apply plan.json`), or point --db at the inventory that applied it"
        )
    live = [r for r in runs if r["status"] != UNDONE]
    return (live or runs)[-1]


def undone_message(message, status, at, by):
    """A run's message once a rollback undid all or part of it, so status and message agree:
    "all steps done; rolled back at <time> by <rollback run>". An earlier rollback's note is
    replaced, not added to."""
    before = (message or "").split("; rolled back at ")[0].split("; partly rolled back at ")[0]
    said = "partly rolled back" if status == PARTLY_UNDONE else "rolled back"
    return f"{before or 'applied'}; {said} at {at} by {by}"


def holds_live_changes(inventory, run):
    """Does the run's journal (or a cutover of its plan) still hold changes no rollback undid?"""
    cutovers = [r for r in inventory.runs("cutover") if run["plan_id"] and r["plan_id"] == run["plan_id"]]
    return any(inventory.live_actions(r["id"]) for r in [run, *cutovers])


def run_to_undo(inventory):
    """What `rollback` without `--run` undoes: the newest apply run that still holds live changes
    (an empty run, as older versions recorded for a plan with nothing to do, never hides an
    earlier one); else the latest apply, so rolling back twice is a no-op."""
    live = [r for r in inventory.runs("apply") if r["status"] != UNDONE and holds_live_changes(inventory, r)]
    return live[-1] if live else latest_apply_run(inventory)


UNDOABLE_KINDS = ("apply", "idp_fix")  # runs `rollback --run` undoes (idp_fix: `idp check --fix`)


def rollback_target(inventory, run_id=None):
    """The run `rollback` undoes: `run_id` (an apply or an idp fix), else the latest not yet rolled back."""
    return apply_run(inventory, run_id, kinds=UNDOABLE_KINDS) if run_id else run_to_undo(inventory)


def apply_run(inventory, run_id=None, kinds=("apply",)):
    """The apply run `run_id` (or a run of one of `kinds`), or the latest apply; a clear error for anything else."""
    run = inventory.run(run_id) if run_id else latest_apply_run(inventory)
    if run is None or run["kind"] not in kinds:
        raise VgmigrateError(f"no apply run {run_id!r}; `vgmigrate history` lists the runs")
    return run


def step_counts(inventory, runs):
    """{run id: Counter of its journal rows' statuses}."""
    return {run["id"]: Counter(a["status"] for a in inventory.actions(run["id"])) for run in runs}


def where_it_stands(runs):
    """The run that says where the migration stands: the newest apply, unless a rollback of it
    failed (then that rollback)."""
    latest, applies = runs[-1], [r for r in runs if r["kind"] == "apply"]
    failed_rollback = latest["kind"] == "rollback" and latest["status"] in (FAILED, INTERRUPTED, RUNNING)
    return latest if failed_rollback or latest["kind"] == "cutover" or not applies else applies[-1]


NEXT_STEP = {
    ("apply", "done"): "vgmigrate verify; once it is clean, remove the CF- group mappings in the IdP",
    ("apply", "failed"): "fix the cause shown above, then vgmigrate apply <the same plan> (or vgmigrate rollback)",
    ("apply", "interrupted"): "vgmigrate apply <the same plan> to finish it (or vgmigrate rollback)",
    ("apply", "running"): "if no apply is running, vgmigrate apply <the same plan> resumes it",
    ("apply", "rolled_back"): "vgmigrate scan, then plan again",
    ("apply", "partly_rolled_back"): "vgmigrate rollback --force to undo the rest, or vgmigrate apply <the same plan> to redo it",
    ("rollback", "done"): "vgmigrate scan, then plan again",
    ("cutover", "done"): "the migration is complete: keep the audit trail: vgmigrate export --format html --out audit/",
    ("cutover", "failed"): "fix the cause shown above, then vgmigrate cutover again (or vgmigrate rollback)",
    ("cutover", "interrupted"): "vgmigrate cutover again to finish it (or vgmigrate rollback)",
    ("cutover", "running"): "if no cutover is running, vgmigrate cutover again finishes it",
    ("rollback", "failed"): "vgmigrate rollback again to finish undoing the run",
    ("rollback", "interrupted"): "vgmigrate rollback again to finish undoing the run",
    ("rollback", "running"): "if no rollback is running, vgmigrate rollback again finishes undoing the run",
}


VERIFIED = ("the migration is verified: remove the migrated members from the CF- groups in your IdP (with Authentik, Okta or Entra ID: "
            "vgmigrate cutover), then keep the audit trail: vgmigrate export --format html --out audit/")


def verified_since(run, verification):
    """Was this verification made after the run last changed anything (a resumed apply, a rollback)?"""
    return verification is not None and verification["at"] >= (run["finished_at"] or run["started_at"] or "")


def next_step(run, verification=None):
    """What to do next, given the run that says where the migration stands and the latest verify
    of it (inventory.last_verification)."""
    if run["kind"] == "apply" and run["status"] == DONE and verified_since(run, verification):
        if verification["differences"] == 0:
            return VERIFIED
        return (f"the last verify found {verification['differences']} difference(s): run `vgmigrate verify` to list them, "
                "then vgmigrate apply <the same plan> to finish, or investigate")
    return NEXT_STEP.get((run["kind"], run["status"]), "vgmigrate history")


def steps_already_done(inventory, plan):
    """How many of this plan's steps an earlier, unfinished apply already did (a resumed apply
    starts its progress there)."""
    run = current_apply_of_plan(inventory, plan["plan_id"])
    if run is None:
        return 0
    steps = {s["id"] for s in plan["steps"]}
    return len({a["step"] for a in inventory.actions(run["id"]) if a["status"] == DONE and a["step"] in steps})


def stage(inventory, account_id):
    """Where the migration stands, as data: `status` prints it and `status --format json` is it.

    {inventory, stage, scan, plan, locks, runs (the current and the latest), verification, next}.
    stage: no_scan | scanned | planned | rehearsed | a run state (`apply done`, `rollback failed`, ...)
    | verified | verify_differences.
    """
    import os

    out = {"inventory": os.path.abspath(inventory.path), "scan": None, "plan": None, "locks": [dict(lock) for lock in inventory.locks()],
           "runs": [], "verification": None}
    scan = inventory.last_scan(account_id)
    if scan is None:
        return {**out, "stage": "no_scan", "next": "vgmigrate scan"}
    out["scan"] = {"id": scan["id"], "account_id": scan["account_id"], "account_name": scan["account_name"],
                   "source": scan["source"], "finished_at": scan["finished_at"]}
    plan = inventory.last_plan(scan["account_id"])
    if plan is not None:
        rehearsal = inventory.last_rehearsal(plan["id"])
        out["plan"] = {"id": plan["id"], "created_at": plan["created_at"], "scan_id": plan["scan_id"], "steps": plan["steps"],
                       "rehearsal": None if rehearsal is None else {"at": rehearsal["at"], "passed": bool(rehearsal["passed"])}}
    runs = [r for r in inventory.runs() if r["account_id"] in (None, scan["account_id"])]
    applied = [r for r in runs if r["kind"] == "apply"]
    newer_scan = not applied or scan["finished_at"] > max(r["finished_at"] or r["started_at"] for r in runs)
    if not applied or (newer_scan and where_it_stands(runs)["status"] == UNDONE):
        return {**out, **_before_apply(out["plan"], scan)}
    current = where_it_stands(runs)
    out["runs"] = [dict(r) for r in runs if r["id"] in (current["id"], runs[-1]["id"])]
    if current["kind"] == "apply":
        verification = inventory.last_verification(current["id"])
        if verified_since(current, verification):
            out["verification"] = dict(verification)
    name = f"{current['kind']} {current['status']}"
    if out["verification"] and current["status"] == DONE:
        name = "verified" if out["verification"]["differences"] == 0 else "verify_differences"
    return {**out, "stage": name, "next": next_step(current, out["verification"])}


def no_inventory(path):
    """`status` where no inventory exists: said as data, and no empty file is left behind."""
    import os

    return {"inventory": os.path.abspath(path), "stage": "no_inventory", "scan": None, "plan": None, "locks": [], "runs": [],
            "verification": None, "next": "vgmigrate scan here, or point --db (VGMIGRATE_DB) at the inventory you scanned into"}


def _before_apply(plan, scan):
    if plan is None or plan["scan_id"] != scan["id"]:
        return {"stage": "scanned", "next": "vgmigrate plan --out plan.json (review the findings first: vgmigrate inventory)"}
    rehearsal = plan["rehearsal"]
    if rehearsal is None:
        return {"stage": "planned", "next": "vgmigrate rehearse plan.json, then have the approver sign off "
                                            "(vgmigrate show plan.json --format html) and vgmigrate apply plan.json"}
    if not rehearsal["passed"]:
        return {"stage": "planned", "next": "the rehearsal failed: do not apply this plan; find the cause, then scan and plan again"}
    return {"stage": "rehearsed", "next": "have the approver sign off (vgmigrate show plan.json --format html), then vgmigrate apply plan.json"}
