"""Property tests of the IdP-managed path through Entra ID over generated accounts
(tests/account_strategies.py), with the Entra emulator seeded from each one and cycling fast.

For every generated account (half of them with a Super Administrator outside SCIM):

1. scan --source entra and `plan --mode idp --on-existing suffix` succeed (without a break glass
   the plan is refused first, writing nothing, then made with --allow-no-break-glass);
2. apply succeeds, verify is clean, a new scan and plan has no steps;
3. the cutover succeeds (or, told there is no break glass, refuses writing nothing) with
   `--delete-groups` on every other account, and rollback undoes cutover and apply;
4. from before apply to the end of the rollback, after every write Cloudflare accepts (Entra's
   pushes included), nobody has less access than at the start and nobody gains a permission group
   the plan does not list for them (AccessWatch);
5. after rollback Cloudflare's User Groups, resource groups and members' roles, and Entra's groups
   (name -> members) and the application's assigned group names, are exactly as at the start.

The default profile runs a third of its examples here (each waits for Entra's cycles), about
15 s; the long profile (VGMIGRATE_HYPOTHESIS_PROFILE=long) a third of 1000.
"""

import copy
import json
import os
import tempfile
from pathlib import Path

import pytest

pytest.importorskip("hypothesis", reason="hypothesis is in the `test` extra: pip install -e '.[test]'")

from hypothesis import event, given, note, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.control import currently_in_test_context  # noqa: E402

from engine_support import iam_state, idp_cli as vg, legacy_roles as roles, succeeded as ok  # noqa: E402
from test_properties_idp import diff, idp_accounts  # noqa: E402

from migrate.sandbox import Sandbox  # noqa: E402
from migrate.sandbox.entra import EntraSandbox  # noqa: E402
from migrate.sandbox.watch import AccessWatch  # noqa: E402

SCRATCH = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
EXAMPLES = max(1, settings().max_examples // 3)




def entra_side(entra):
    with entra.state.lock:
        groups = {g["displayName"]: sorted(g["members"]) for g in entra.state.groups.values()}
        assigned = sorted(entra.state.groups[g]["displayName"] for g in entra.state.assigned_groups(entra.service_principal_id))
    return {"groups": groups, "assigned": assigned}


def everything(cf, entra):
    return {"iam": iam_state(cf), "roles": roles(cf), "entra": entra_side(entra)}


def entra_writes(entra):
    return len([c for c in entra.calls if c[0] != "GET" and not c[1].endswith("/token")])


def check_entra_cycle(seed, delete_groups, tmp):
    db, out, again = tmp / "v.db", tmp / "plan.json", tmp / "again.json"
    with Sandbox(seed=copy.deepcopy(seed), rate_limit=None) as cf, EntraSandbox(cloudflare=cf, cycle_seconds=0.1) as entra:
        start, writes = everything(cf, entra), entra_writes(entra)
        ok(vg(cf, entra, db, "scan", "--source", "entra"), "scan")
        planned = vg(cf, entra, db, "plan", "--mode", "idp", "--on-existing", "suffix", "--out", out)
        break_glass = []
        if planned.exit_code != 0 and "no_super_admin_outside_scim" in planned.output:
            assert planned.exit_code == 1 and not out.exists(), planned.output
            break_glass = ["--allow-no-break-glass"]
            planned = vg(cf, entra, db, "plan", "--mode", "idp", "--on-existing", "suffix", "--out", out, *break_glass)
        ok(planned, "plan --mode idp")
        plan = json.loads(out.read_text())
        if currently_in_test_context():
            note(f"plan steps {[(s['kind'], s.get('target')) for s in plan['steps']]}")
        assert everything(cf, entra) == start and entra_writes(entra) == writes, "planning wrote something"
        if not plan["steps"]:
            return "nothing to migrate"
        watch, outcome = AccessWatch(cf, plan), "applied and cut over" + (" --delete-groups" if delete_groups else "")
        try:
            ok(vg(cf, entra, db, "apply", out, "--yes"), "apply")
            ok(vg(cf, entra, db, "verify"), "verify")
            ok(vg(cf, entra, db, "scan", "--source", "entra"), "second scan")
            ok(vg(cf, entra, db, "plan", "--mode", "idp", "--on-existing", "suffix", "--out", again, *break_glass), "second plan")
            assert json.loads(again.read_text())["steps"] == [], "planning again after apply has steps"
            applied, writes = everything(cf, entra), entra_writes(entra)
            cut = vg(cf, entra, db, "cutover", "--yes", *(["--delete-groups"] if delete_groups else []))
            if cut.exit_code != 0:
                assert break_glass and cut.exit_code == 1 and "no accepted Super Administrator outside SCIM" in cut.output, cut.output
                assert everything(cf, entra) == applied and entra_writes(entra) == writes
                outcome = "applied, cutover refused (no break glass)"
            ok(vg(cf, entra, db, "rollback", "--yes"), "rollback")
        finally:
            watch.stop()
        assert watch.violations == [], "access changed beyond the plan:\n" + "\n".join(watch.violations[:10])
        end = everything(cf, entra)
        assert end == start, "rollback did not restore everything:\n" + diff(start, end)
        assert "nothing left to undo" in ok(vg(cf, entra, db, "rollback", "--yes"), "second rollback").output
        return outcome


@settings(max_examples=EXAMPLES)
@given(seed=idp_accounts(), delete_groups=st.booleans())
def test_every_idp_promise_holds_through_entra_for_every_account(seed, delete_groups):
    with tempfile.TemporaryDirectory(prefix="vgmigrate-prop-entra-", dir=SCRATCH) as tmp:
        event(check_entra_cycle(seed, delete_groups, Path(tmp)))
