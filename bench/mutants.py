"""Plant small bugs in the core rules, one at a time, and check that a focused unit test catches each.

    python bench/mutants.py              # every mutant; exit 1 if any survives
    python bench/mutants.py --only M03   # one mutant (repeatable)
    python bench/mutants.py --list       # what each mutant changes, and the tests it is run against

Each mutant is a small textual change to one rule (the account-wide test, deny policies, email
case, pending members, journal order, reconcile, rollback staleness, POST resend, Retry-After, the
plan hash, the stale check, token redaction, the name grammar, role resolution, ...). It is applied
to a temporary copy of the repository, never to the working tree, and only the focused test files
named for it run (not the whole suite), stopping at the first failure. A mutant is *caught* when a
test fails, *survived* when they all pass, and *stale* when the code it changes is no longer there
(the rule moved: update the mutant). The score is caught / all mutants run: a stale or broken
mutant fails the bench like a survivor, so every score counts the same mutants.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COPY = ("migrate", "tests", "fixtures", "pyproject.toml", "README.md")


@dataclass(frozen=True)
class Mutant:
    id: str
    rule: str
    path: str
    changes: tuple  # ((old, new), ...): each old must occur exactly once
    tests: tuple  # focused test files or node ids


def m(id, rule, path, old, new, *tests, more=()):
    return Mutant(id, rule, path, ((old, new), *more), tests)


CORE = "tests/test_core_rules.py"
IAM_PURE = ("tests/test_iam_rules.py::test_is_account_wide", "tests/test_iam_rules.py::test_grants_needs_an_allow_on_an_account_wide_group_and_no_deny",
            "tests/test_iam_rules.py::test_identity_of_names_and_emails", "tests/test_iam_rules.py::test_held_roles_count_only_account_wide_allows_not_taken_back",
            "tests/test_iam_rules.py::test_same_policies_ignores_ids_order_and_expansion_but_not_access")

# apply's pending row, written before the call it records (M10 moves it after)
JOURNAL_PENDING = ('        self.inv.journal_pending(self.run_id, self.seq[sid], sid, kind.kind, step["target"], method, path, '
                   'kind.journaled(request, request), inverse)\n')

MUTANTS = [
    # the account-wide test (iam.py)
    m("M01", "account-wide: a scope with '*' among zones counts", "migrate/iam.py",
      'and objects == [WHOLE_ACCOUNT]', 'and WHOLE_ACCOUNT in objects', *IAM_PURE),
    m("M02", "account-wide: any account's scope key counts", "migrate/iam.py",
      'return scope.get("key") == account_scope_key(account_id) and objects == [WHOLE_ACCOUNT]',
      'return scope.get("key", "").startswith(ACCOUNT_SCOPE_PREFIX) and objects == [WHOLE_ACCOUNT]', *IAM_PURE),
    # deny policies
    m("M03", "deny: a deny of the same permission group no longer takes the grant back", "migrate/iam.py",
      "return allowed and not denied", "return allowed", *IAM_PURE),
    m("M04", "deny: a member's direct deny no longer removes a held role", "migrate/iam.py",
      "if key and key not in denied:", "if key:", *IAM_PURE),
    m("M05", "deny: a deny policy counts as the same as an allow", "migrate/iam.py",
      'policy.get("access", "allow"),\n        tuple(sorted(_ids(policy.get("permission_groups")))),',
      '"allow",\n        tuple(sorted(_ids(policy.get("permission_groups")))),', *IAM_PURE),
    # email and name case
    m("M06", "email case: emails compared case-sensitively", "migrate/iam.py",
      'return (email or "").strip().lower()', 'return (email or "").strip()', *IAM_PURE),
    m("M07", "name identity: names compared case-sensitively", "migrate/iam.py",
      'return " ".join(visible.split()).casefold()', 'return " ".join(visible.split())', *IAM_PURE),
    # pending members
    m("M08", "pending members: a pending Super Administrator counts as break-glass", "migrate/findings.py",
      'if m.get("status") == "accepted" and e not in in_super_vg', "if e not in in_super_vg", CORE),
    m("M09", "pending members: a pending invitation is not flagged", "migrate/findings.py",
      'elif member.get("status") == "pending":', "elif False:", CORE),
    # journal order
    m("M10", "journal order: the call is sent before its pending row is written", "migrate/executor.py",
      JOURNAL_PENDING + '        self.hook("before_call", sid)\n',
      '        self.hook("before_call", sid)\n', CORE,
      more=(('        self.hook("after_call", sid)\n', '        self.hook("after_call", sid)\n' + JOURNAL_PENDING),)),
    m("M11", "journal order: rollback undoes resource groups before the groups that use them", "migrate/rollback.py",
      "                run_parallel(lambda group: [kind_of(a).undo(self, a) for a in group], groups, self.parallel)\n"
      "                for action in last:\n                    kind_of(action).undo(self, action)\n",
      "                for action in last:\n                    kind_of(action).undo(self, action)\n"
      "                run_parallel(lambda group: [kind_of(a).undo(self, a) for a in group], groups, self.parallel)\n", CORE),
    # reconcile
    m("M12", "reconcile: a pending create is matched by name alone", "migrate/steps/api.py",
      'if iam.name_key(g["name"]) == iam.name_key(request["name"]) and iam.same_policies(g.get("policies"), request["policies"]):',
      'if iam.name_key(g["name"]) == iam.name_key(request["name"]):', CORE),
    m("M13", "reconcile: a pending member add is done when any member is there", "migrate/steps/api.py",
      'return request["group"] if set(request["members"]) <= present else None',
      'return request["group"] if set(request["members"]) & present else None', CORE),
    m("M14", "reconcile: a zone-scoped resource group of the same name is taken for ours", "migrate/steps/api.py",
      'if iam.is_account_wide(rg, account_id) and iam.name_key(rg.get("name")) == iam.name_key(request["name"]):',
      'if iam.name_key(rg.get("name")) == iam.name_key(request["name"]):', CORE),
    # rollback staleness
    m("M15", "rollback staleness: a group with members added by hand is deleted", "migrate/steps/api.py",
      "if (changed or extra) and not job.force:", "if changed and not job.force:", CORE),
    m("M16", "rollback staleness: a group whose policies changed is deleted", "migrate/steps/api.py",
      "if (changed or extra) and not job.force:", "if extra and not job.force:", CORE),
    m("M17", "rollback staleness: an adopted group's changed membership is overwritten", "migrate/steps/api.py",
      'if live != prior | set(action["request"]["members"]) and not job.force:', "if False:", CORE),
    m("M18", "rollback staleness: an adopted group's changed policies are overwritten", "migrate/steps/api.py",
      'if not iam.same_policies(live.get("policies"), action["request"]["policies"]) and not job.force:', "if False:", CORE),
    m("M19", "rollback: any error on delete is taken as already gone", "migrate/rollback.py",
      "if err.status == 404:", "if err.status >= 400:", CORE),
    m("M20", "rollback: an interrupted rollback's member adds are never marked undone", "migrate/steps/api.py",
      "if group_id not in job.live_groups:  # deleted by an earlier, interrupted rollback", "if False:",
      "tests/test_interrupts.py::test_ctrl_c_between_deleting_a_group_and_marking_its_members_does_not_hide_work"),
    # POST resend
    m("M21", "POST resend: a POST that may have been applied is retried", "migrate/http.py",
      'IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})',
      'IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "POST"})', "tests/test_http.py"),
    m("M22", "POST resend: apply sends a write again after its response was lost", "migrate/executor.py",
      "        except OutcomeUnknown:\n            result = None\n            found = self._after_lost_response(step, kind, request)",
      "        except OutcomeUnknown:\n            result = kind.send(self.client, request)", CORE),
    # Retry-After
    m("M23", "Retry-After: a 429's Retry-After is ignored (backoff instead)", "migrate/http.py",
      "wait = parse_retry_after(response.headers)", "wait = None", "tests/test_http.py"),
    m("M24", "Retry-After: delta-seconds read as milliseconds", "migrate/http.py",
      "        return max(0.0, float(value))\n    except ValueError:\n        pass\n    try:\n        when",
      "        return max(0.0, float(value) / 1000.0)\n    except ValueError:\n        pass\n    try:\n        when", "tests/test_http.py"),
    m("M25", "5xx: 501 Not Implemented is retried", "migrate/http.py",
      "_PERMANENT_5XX = frozenset({501, 505})", "_PERMANENT_5XX = frozenset()", "tests/test_http.py"),
    # plan hash
    m("M26", "plan hash: the steps are left out of the hash", "migrate/planfile.py",
      'body = {k: v for k, v in plan.items() if k != "plan_id"}',
      'body = {k: v for k, v in plan.items() if k not in ("plan_id", "steps")}', CORE),
    m("M27", "plan hash: the hash is not checked on read", "migrate/planfile.py",
      'if content_hash(plan) != plan["plan_id"]:', "if False:", CORE),
    # stale check
    m("M28", "stale check: a target name taken in another case is not seen", "migrate/executor.py",
      'if iam.name_key(name) in by_name and iam.name_key(name) not in ours:',
      'if name in {g["name"] for g in live_groups} and iam.name_key(name) not in ours:', CORE),
    m("M29", "stale check: a new account-wide resource group is not seen", "migrate/executor.py",
      "if iam.account_wide_ids(live_rgs, account_id):", "if False:", CORE),
    m("M30", "stale check: a member who joined an adopted group is not seen", "migrate/executor.py",
      'joined = set(adopted_members.get(gid, ())) - set(before.get("members", ())) - planned', "joined = set()", CORE),
    # token redaction
    m("M31", "token redaction: v4/SCIM error objects are not scrubbed", "migrate/errors.py",
      "return {k: _redacted(v, redact) for k, v in error.items()}", "return error", "tests/test_secrets.py::test_an_error_body_quoting_the_token_is_redacted"),
    m("M32", "token redaction: nested error_chain messages are not scrubbed", "migrate/errors.py",
      "    if isinstance(error, (list, tuple)):\n        return [_redacted(v, redact) for v in error]\n", "", "tests/test_secrets.py::test_an_error_body_quoting_the_token_is_redacted"),
    m("M33", "token redaction: the HTTP layer's redact does nothing", "migrate/http.py",
      'return str(text).replace(self._token, "***")', "return str(text)", "tests/test_secrets.py::test_an_error_body_quoting_the_token_is_redacted"),
    # name grammar
    m("M34", "name grammar: a 33-digit account id parses", "migrate/names.py",
      'HEX_ID = "[0-9a-fA-F]{32}"', 'HEX_ID = "[0-9a-fA-F]{32,33}"', "tests/test_names.py"),
    m("M35", "name grammar: a role starting with a dash parses", "migrate/names.py",
      "    if _ROLE_START_DASH.match(role_text):\n        return None", "    if False:\n        return None", "tests/test_names.py"),
    m("M36", "name grammar: 'CF-<id>-<Role>' is not flagged as a variant", "migrate/names.py",
      'found.add("no_spaces")', "pass", "tests/test_names.py"),
    m("M37", "name grammar: lower-case 'cf-' is not flagged", "migrate/names.py",
      'if match["prefix"] != "CF":', "if False:", "tests/test_names.py"),
    # role resolution
    m("M38", "role resolution: a deprecated permission group is chosen", "migrate/roles.py",
      "return is_account_scoped(pg) and not is_deprecated(pg)", "return is_account_scoped(pg)", "tests/test_roles.py"),
    m("M39", "role resolution: the mapping file no longer comes first", "migrate/roles.py",
      "        if key in mapped:\n            return resolve_role(role, groups, mapping)",
      "        if False:\n            return resolve_role(role, groups, mapping)", "tests/test_roles.py"),
    # settings, lock, break-glass
    m("M40", "account id: a malformed account id is sent to the API", "migrate/cli.py",
      "    if not is_hex_id(account):\n", "    if False:\n", CORE),
    m("M41", "lock: a live holder's lock is taken over", "migrate/inventory.py",
      "    if holder_alive(lock) is not False:\n        raise", "    if holder_alive(lock) is None:\n        raise", CORE),
    m("M42", "break-glass: plan goes ahead with no Super Administrator outside SCIM", "migrate/planner.py",
      'if not any(f["code"] == NO_BREAK_GLASS for f in plan["findings"]):', "if True:", "tests/test_break_glass.py"),
    # what the report and verify promise (issue 22: both survived the suite once)
    m("M43", "verify: a policy on any resource group counts as account-wide", "migrate/verify.py",
      "rg_ids = iam.account_wide_ids(client.resource_groups(), client.account_id)", 'rg_ids = {rg["id"] for rg in client.resource_groups()}',
      "tests/test_held_access.py::test_verify_fails_when_a_policy_is_moved_to_a_domain_scoped_resource_group"),
    m("M44", "role_not_held: only the virtual group's role name counts, not the permission group it resolved to", "migrate/findings.py",
      'return {name_key(vg_row.get("role")), name_key(vg_row.get("permission_group_name"))} - {""}', 'return {name_key(vg_row.get("role"))} - {""}',
      "tests/test_held_access.py::test_a_renamed_or_mapped_role_held_under_its_new_name_is_not_reported_lost"),
]


def copy_repo(dest):
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")
    for name in COPY:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=ignore)
        elif src.exists():
            shutil.copy2(src, dest / name)


def pytest(copy, tests, timeout=300):
    """(return code, first failing test, seconds): the focused tests, in the copy, stop at the first failure."""
    env = {**os.environ, "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1"}
    started = time.monotonic()
    try:
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-rf", "-p", "no:cacheprovider", *tests],
                              cwd=copy, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", "", time.monotonic() - started
    failed = re.search(r"^FAILED (\S+)", done.stdout, re.M)
    return done.returncode, failed.group(1) if failed else done.stdout.strip().splitlines()[-1:], time.monotonic() - started


def run_mutant(copy, mutant):
    target = copy / mutant.path
    original = target.read_text()
    text = original
    for old, new in mutant.changes:
        if text.count(old) != 1:
            return "STALE", f"{old.strip().splitlines()[0][:60]!r} found {text.count(old)} times, not once", 0.0
        text = text.replace(old, new)
    target.write_text(text)
    try:
        code, detail, seconds = pytest(copy, mutant.tests)
    finally:
        target.write_text(original)
    if code == 1:
        return "caught", detail, seconds
    if code == 0:
        return "SURVIVED", "every focused test passed", seconds
    return "ERROR", f"pytest exit {code}: {detail}", seconds  # collection error or timeout: a broken mutant


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", action="append", help="run only this mutant id (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    args = parser.parse_args(argv)
    mutants = [mu for mu in MUTANTS if not args.only or mu.id in args.only]
    if args.list:
        for mu in mutants:
            print(f"{mu.id}  {mu.path:<22} {mu.rule}\n      tests: {' '.join(mu.tests)}")
        return 0
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}  (from {ROOT})")
    with tempfile.TemporaryDirectory(prefix="vgmigrate-mutants-") as tmp:
        copy = Path(tmp)
        copy_repo(copy)
        focused = sorted({t for mu in mutants for t in mu.tests})
        code, detail, seconds = pytest(copy, focused)
        print(f"baseline: {len(focused)} focused test target(s), unmutated: {'pass' if code == 0 else 'FAIL'} ({seconds:.1f}s)")
        if code != 0:
            print(f"the focused tests fail without any mutant ({detail}); fix them first")
            return 2
        rows = []
        for mu in mutants:
            outcome, detail, seconds = run_mutant(copy, mu)
            rows.append((mu, outcome, detail, seconds))
            print(f"{mu.id}  {outcome:<8} {seconds:5.1f}s  {mu.rule}\n      {detail}", flush=True)
    print()
    print(f"{'id':<4}  {'outcome':<8}  {'file':<22}  rule")
    for mu, outcome, _, _ in rows:
        print(f"{mu.id:<4}  {outcome:<8}  {mu.path:<22}  {mu.rule}")
    line, code = score([(mu.id, outcome) for mu, outcome, _, _ in rows])
    print(f"\n{line}")
    return code


def score(outcomes):
    """(the score line, exit code) for [(mutant id, outcome)]. Every mutant counts: one that no
    longer applies (STALE) or does not run (ERROR) is a failure of the bench, not a skip, since a
    score that quietly drops mutants can no longer be compared with the last one."""
    caught = [i for i, o in outcomes if o == "caught"]
    failed = {o: [i for i, oo in outcomes if oo == o] for o in ("SURVIVED", "STALE", "ERROR")}
    line = f"score: {len(caught)}/{len(outcomes)} planted bugs caught by focused unit tests"
    line += "".join(f"; {o.lower()}: {', '.join(ids)}" for o, ids in failed.items() if ids)
    if failed["STALE"]:
        line += " (the code they change moved: update them)"
    return line, 0 if len(caught) == len(outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
