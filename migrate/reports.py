"""Human-readable tables for the terminal. Pure: data in, text out."""

import re
from collections import Counter

from tabulate import tabulate

from .findings import SEVERITIES


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


_VG_ID = re.compile(r"(?i)^(cf-\s*)([0-9a-f]{32})")


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
    text = str(text).replace("\t", "\\t").replace("\u00a0", "\u2423")
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
    return text


def plan_summary_line(plan):
    kinds = Counter(s["kind"] for s in plan["steps"])
    members = sum(len(s["request"]["members"]) for s in plan["steps"] if s["kind"] == "add_members")
    parts = [f"{kinds.get('create_user_group', 0)} to create", f"{kinds.get('adopt_user_group', 0)} to adopt", f"{members} member additions"]
    if kinds.get("create_resource_group"):
        parts.append("1 resource group to create")
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
