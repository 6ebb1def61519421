"""Runs and their state: ids, statuses, which run is current, step counts, and what to do next.

`status`, `history`, `verify`, `rollback` and `apply` all read runs through here, so they agree on
which run a command means and what its state is.
"""

from collections import Counter
from dataclasses import dataclass, field

from .errors import VgmigrateError
from .inventory import utcnow

# runs.status: running | done | failed | interrupted (apply) and rolled_back | partly_rolled_back
# once a rollback undid all or part of an apply; a rollback run is running | done | failed |
# interrupted (Ctrl-C).
UNDONE = "rolled_back"
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
        raise VgmigrateError("no apply run in this inventory; `vgmigrate history` lists the runs")
    live = [r for r in runs if r["status"] != UNDONE]
    return (live or runs)[-1]


def apply_run(inventory, run_id=None):
    """The apply run `run_id`, or the latest one; a clear error for anything else."""
    run = inventory.run(run_id) if run_id else latest_apply_run(inventory)
    if run is None or run["kind"] != "apply":
        raise VgmigrateError(f"no apply run {run_id!r}; `vgmigrate history` lists the runs")
    return run


def step_counts(inventory, runs):
    """{run id: Counter of its journal rows' statuses}."""
    return {run["id"]: Counter(a["status"] for a in inventory.actions(run["id"])) for run in runs}


def where_it_stands(runs):
    """The run that says where the migration stands: the newest apply, unless a rollback of it
    failed (then that rollback)."""
    latest, applies = runs[-1], [r for r in runs if r["kind"] == "apply"]
    failed_rollback = latest["kind"] == "rollback" and latest["status"] in ("failed", "interrupted", "running")
    return latest if failed_rollback or not applies else applies[-1]


NEXT_STEP = {
    ("apply", "done"): "vgmigrate verify; once it is clean, remove the CF- group mappings in the IdP",
    ("apply", "failed"): "fix the cause shown above, then vgmigrate apply <the same plan> (or vgmigrate rollback)",
    ("apply", "interrupted"): "vgmigrate apply <the same plan> to finish it (or vgmigrate rollback)",
    ("apply", "running"): "if no apply is running, vgmigrate apply <the same plan> resumes it",
    ("apply", "rolled_back"): "vgmigrate scan, then plan again",
    ("apply", "partly_rolled_back"): "vgmigrate rollback --force to undo the rest, or vgmigrate apply <the same plan> to redo it",
    ("rollback", "done"): "vgmigrate scan, then plan again",
    ("rollback", "failed"): "vgmigrate rollback again to finish undoing the run",
    ("rollback", "interrupted"): "vgmigrate rollback again to finish undoing the run",
    ("rollback", "running"): "if no rollback is running, vgmigrate rollback again finishes undoing the run",
}


def next_step(run):
    return NEXT_STEP.get((run["kind"], run["status"]), "vgmigrate history")
