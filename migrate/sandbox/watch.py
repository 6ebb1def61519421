"""AccessWatch: after every write the sandbox accepts, check that access changes only as a plan says.

    watch = AccessWatch(sb, plan)        # records everyone's access now, and starts watching
    ...apply, crash, resume, rollback...
    watch.violations                     # [] when nobody ever lost access or gained an unlisted role

The oracle is the sandbox's own `effective_access` (it imports nothing from the tool); the plan is
read as plain data: a member may gain a permission group only where the plan lists them, in a
group's `members` (who the run adds) or `gains` (who is already in a group it adopts). Nobody may
ever have less than they had when the watch started, so rollback, which only undoes what the run
added, is held to the same rule.
"""

import threading


class AccessWatch:
    def __init__(self, sandbox, plan):
        self.sandbox = sandbox
        self.allowed = {}  # member id -> permission group ids the plan may grant them
        for group in plan.get("groups") or []:
            if group.get("action") == "conflict":
                continue
            pg = group["permission_group"]["id"]
            for member in list(group.get("members") or []) + list(group.get("gains") or []):
                self.allowed.setdefault(member["id"], set()).add(pg)
        self.violations = []
        self.checks = 0
        self._lock = threading.Lock()
        with sandbox.state.lock:
            self.start = sandbox.state.effective_access()
        sandbox.on_write = self._after_write

    def stop(self):
        self.sandbox.on_write = None

    def _after_write(self, state, method, path):
        """Called by the sandbox under its state lock, right after a write took effect."""
        now = state.effective_access()
        found = []
        for member_id, before in self.start.items():
            after = now.get(member_id, frozenset())
            lost = before - after
            if lost:
                found.append(f"{method} {path}: member {member_id} lost {sorted(lost)}")
            unlisted = {pg for pg, _ in after - before if pg not in self.allowed.get(member_id, ())}
            if unlisted:
                found.append(f"{method} {path}: member {member_id} gained {sorted(unlisted)}, which the plan does not list")
        with self._lock:
            self.checks += 1
            self.violations.extend(found)
