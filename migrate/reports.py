"""Human-readable tables for the terminal. Pure: data in, text out."""

import re
from collections import Counter

from tabulate import tabulate

from .approval import in_words
from .findings import SEVERITIES
from .names import HEX_ID, reveal
from .idp.base import idp_name
from .steps import summary_parts


def scan_summary(counts, findings):
    rows = [
        ("virtual groups", counts["virtual_groups"]),
        ("  with a resolved role", counts["resolved"]),
        ("memberships", counts["memberships"]),
        ("account members", counts["members"]),
        ("permission groups (account-scoped)", f"{counts['permission_groups']} ({counts['account_scoped_permission_groups']})"),
        ("existing user groups", counts["user_groups"]),
    ]
    by_severity = Counter(f.severity for f in findings)
    text = tabulate(rows, tablefmt="simple", headers=("scanned", "count"))
    text += "\n\n" + tabulate(
        [(s, by_severity.get(s, 0)) for s in SEVERITIES], headers=("findings", "count"), tablefmt="simple"
    )
    return text


def findings_table(findings, width=120):
    message = max(30, width - 80)
    rows = [(f.severity, f.code, _clip(vg_label(f.subject), 48), f.message) for f in findings]
    return tabulate(rows, headers=("severity", "code", "subject", "message"), tablefmt="simple", maxcolwidths=[None, None, 48, message])


def findings_grouped(findings, first=3, width=120):
    """One row per (severity, code), worst first: how many, the first few subjects, what to do.
    A large account has thousands of findings of a handful of kinds."""
    groups = {}
    for f in findings:
        groups.setdefault((f.severity, f.code), []).append(f)
    rows = []
    for (severity, code), found in sorted(groups.items(), key=lambda kv: (SEVERITIES.index(kv[0][0]), -len(kv[1]), kv[0][1])):
        subjects = ", ".join(_clip(vg_label(f.subject), 40) for f in found[:first])
        more = f" and {len(found) - first:,} more" if len(found) > first else ""
        rows.append((severity, code, f"{len(found):,}", subjects + more, found[0].action))
    rest = max(20, (width - 40) // 2)
    return tabulate(rows, headers=("severity", "code", "count", "subjects", "what to do"), tablefmt="simple",
                    maxcolwidths=[None, None, None, rest, rest])


_VG_ID = re.compile(rf"(?i)^(cf-\s*)({HEX_ID})")


def vg_label(name):
    """A virtual group name shortened where it does not tell groups apart: the account id, not
    the role. Anything that is not a virtual group name is left as it is."""
    return _VG_ID.sub(lambda m: f"{m.group(1)}{m.group(2)[:4]}\u2026{m.group(2)[-3:]}", str(name))


def virtual_groups_table(groups, member_counts):
    rows = [
        (
            _clip(vg_label(g["name"]), 60),
            g["role"],
            g["resolution"],
            g.get("method") or "",
            g.get("permission_group_name") or "",
            member_counts.get(g["id"], 0),
        )
        for g in groups
    ]
    return tabulate(rows, headers=("virtual group", "role", "resolution", "how", "permission group", "members"), tablefmt="simple")


def _clip(text, width):
    text = reveal(text)  # odd characters shown as every other output shows them
    return text if len(text) <= width else text[: width - 1] + "\u2026"


def plan_table(plan):
    rows = []
    for g in plan["groups"]:
        vgs = ", ".join(_clip(vg_label(v["name"]), 40) for v in g["virtual_groups"])
        methods = ", ".join(sorted({v["resolution"] for v in g["virtual_groups"]}))
        rows.append((g["action"], g["name"], g["permission_group"]["name"], methods, len(g["members"]), vgs))
    text = tabulate(rows, headers=("action", "user group", "permission group", "resolved by", "members", "from virtual groups"), tablefmt="simple")
    if plan["skipped"]:
        text += "\n\nnot migrated:\n" + tabulate([(_clip(vg_label(s["virtual_group"]), 60), s["reason"]) for s in plan["skipped"]], headers=("virtual group", "why"), tablefmt="simple", maxcolwidths=[None, 80])
    return text + "\n\n" + access_summary(plan)


def access_summary(plan):
    """Who loses, moves and gains access, in words, as the approval report opens."""
    return "\n".join(f"{title}: {who}" for _, title, who in in_words(plan))


def plan_summary_line(plan):
    parts = summary_parts(plan["steps"], plan.get("idp") and idp_name(plan["idp"]))
    return f"Plan {plan['plan_id'][:12]}: {len(plan['steps'])} steps ({', '.join(parts)})."


def run_summary(result):
    rows = sorted(result.counts.items())
    rows += [("API calls", result.calls), ("seconds", f"{result.seconds:.1f}")]
    return tabulate(rows, headers=(f"run {result.run_id}", result.status), tablefmt="simple")


def differences_table(diffs):
    return tabulate([(d["kind"], d["subject"], d["detail"]) for d in diffs], headers=("difference", "subject", "detail"), tablefmt="simple")


def runs_table(runs, step_counts):
    rows = [
        (r["id"], r["kind"], r["status"], (r["plan_id"] or "")[:12], r["started_at"], r["finished_at"] or "",
         ", ".join(f"{k} {v}" for k, v in sorted(step_counts.get(r["id"], {}).items())))
        for r in runs
    ]
    return tabulate(rows, headers=("run", "kind", "status", "plan", "started", "finished", "steps"), tablefmt="simple")


# ---- JSON output (`--format json`): stable, sorted keys, documented in README "JSON output" ----


def to_json(data):
    import json

    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def scan_json(scan_id, account_id, calls, counts, findings, token_kind=None):
    return {"scan": scan_id, "account": account_id, "api_calls": calls, "counts": counts,
            "findings": [f.as_row() for f in findings], "token_kind": token_kind}


TOKEN_KINDS = {"account": "an account-owned API token", "user": "a user-owned API token"}


def token_words(kind):
    """Which kind of token `scan` found, as the scan line says it."""
    return TOKEN_KINDS.get(kind, "an API token")


def run_json(result, **extra):
    """An apply or rollback result: {run, status, counts, api_calls, seconds, message, ...}."""
    return {"run": result.run_id, "status": result.status, "counts": dict(result.counts), "api_calls": result.calls,
            "seconds": round(result.seconds, 3), "message": result.message, **extra}


def runs_json(runs, step_counts):
    return [{**{k: r[k] for k in ("id", "kind", "status", "plan_id", "undoes", "account_id", "started_at", "finished_at", "message")},
             "steps": dict(step_counts.get(r["id"], {}))} for r in runs]


def status_text(data, step_counts, where=None):
    """`status` for people, from runs.stage(); `where`: the inventory as the user should read it."""
    if data["stage"] == "no_inventory":
        return f"No inventory at {data['inventory']}: nothing has been scanned into it.\n\nNext: {data['next']}"
    if data["scan"] is None:
        return f"No scan recorded yet in {where or data['inventory']}.\n\nNext: {data['next']}"
    scan = data["scan"]
    out = [f"last scan: {scan['id']} of account {scan['account_id']} at {scan['finished_at']}"]
    plan = data["plan"]
    if plan:
        rehearsal = plan["rehearsal"]
        rehearsed = "not rehearsed" if rehearsal is None else f"rehearsal {'passed' if rehearsal['passed'] else 'FAILED'} at {rehearsal['at']}"
        out.append(f"last plan written: {plan['id'][:12]} from scan {plan['scan_id']} at {plan['created_at']}, {plan['steps']} steps, {rehearsed}")
    for lock in data["locks"]:
        out.append(f"locked by {lock['holder']} since {lock['acquired_at']} (lock id {lock['run_id']})")
    if data["runs"]:
        out.append("\n" + runs_table(data["runs"], step_counts))
    verification = data["verification"]
    if verification:
        found = "no differences" if verification["differences"] == 0 else f"{verification['differences']} difference(s)"
        out.append(f"\nverified {verification['at']}: {verification['groups']} User Groups, {verification['member_roles']} member roles, {found}")
    out.append(f"\nNext: {data['next']}")
    return "\n".join(out)


def export_json(result, out_dir):
    """`export --format json`'s stdout: what was written where (the data is in the files)."""
    counts = {t: len(result.tables[t]) for t in ("runs", "journal", "findings") if t in result.tables}
    audit = None if result.audit is None else {k: result.audit[k] for k in ("entries", "linked") if k in result.audit}
    return {"out": str(out_dir), "files": list(result.files), "counts": counts, "audit_log": audit}


def verify_clean(run_id, counts):
    """What a clean verify says (`verify`, and `cutover`, which runs one first)."""
    return f"run {run_id}: {counts['groups']} User Groups and {counts['member_roles']} member roles match; no differences."
