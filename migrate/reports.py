"""Human-readable tables for the terminal. Pure: data in, text out."""

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


def findings_table(findings):
    rows = [(f.severity, f.code, _clip(f.subject, 48), f.message) for f in findings]
    return tabulate(rows, headers=("severity", "code", "subject", "message"), tablefmt="simple", maxcolwidths=[None, None, 48, 80])


def virtual_groups_table(groups, member_counts):
    rows = [
        (
            _clip(g["name"], 60),
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
