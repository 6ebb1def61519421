"""The dry-run report an approver signs off before anything changes. Pure: plan in, text out.

Two renderings of the same facts: GitHub-flavoured Markdown that pastes cleanly into a ticket, and
one self-contained HTML file (inline CSS, no scripts, nothing fetched) that reads in a browser and
prints. Names come from IdPs and may hold tabs, NBSP, zero-width or bidi characters: they are
escaped everywhere and the odd characters made visible, because an approver must see them.
"""

import shlex
from collections import Counter
from itertools import chain

from .findings import severity_counts, sorted_findings
from .idp.base import idp_name
from .iam import email_key
from .markup import esc, html_name, html_page_chunks, html_table, html_table_chunks, joined, md_code, md_table, md_table_lines, md_text
from .names import reveal
from .steps import CreateIdpGroup, ScopeIdpGroups, added_members, describe, is_kind

RESOLUTION_LABELS = {
    "exact": "exact name",
    "normalised": "normalised name",
    "rename": "rename table",
    "mapping": "mapping file",
}
ACTION_LABELS = {
    "create": "create",
    "adopt": "adopt existing",
    "update": "add missing members",
    "none": "no change",
    "conflict": "BLOCKED: name taken",
}
# A members x roles matrix stays readable up to about this many role columns; beyond it the
# access picture is a list (before, after, change) instead.
MATRIX_MAX_ROLES = 10
# Longer lists fold away in HTML (<details>), so the page stays scannable.
FOLD_MEMBERS_OVER = 10
FOLD_UNCHANGED_OVER = 15


# ---- the facts of a plan, independent of format -----------------------------------------------------


def scope_text(plan):
    rg = plan.get("resource_group") or {}
    if "create" in rg:
        return "whole account", f"new resource group {rg['create']}"
    return "whole account", f"resource group {rg.get('name') or rg.get('id')}"


def apply_command(plan, plan_path):
    return f"vgmigrate --account {plan['account']['id']} apply {shlex.quote(str(plan_path))}"


def plan_counts(plan):
    actions = Counter(g["action"] for g in plan["groups"])
    rows = access_rows(plan)
    additions = [m for s in plan["steps"] for m in added_members(s)]
    return {
        "actions": actions,
        "member_additions": len(additions),
        "members": len(set(additions)),
        "virtual_groups": sum(len(g["virtual_groups"]) for g in plan["groups"]),
        "skipped": len(plan["skipped"]),
        **{kind: sum(1 for r in rows if r[kind]) for kind in ("lost", "moved", "gained", "restored", "cannot_add")},
    }


def access_rows(plan):
    """Each member's access before (held today through virtual groups) and after (User Groups),
    differences first, each kind of difference apart: lost, moved by the mapping file, gained
    (restored: the plan gives back a role they do not hold today), never had and cannot be added.
    Worked out once per plan: every section of the report reads them (100,000 members: ~1 s each)."""
    cached = _ACCESS_ROWS.get("plan")
    if cached is None or cached[0] is not plan["access"]:
        _ACCESS_ROWS["plan"] = cached = (plan["access"], _access_rows(plan["access"]))
    return cached[1]


_ACCESS_ROWS = {}  # "plan" -> (the plan's access list, its rows): the last plan rendered


def _access_rows(access):
    rows = []
    for a in access:
        if a["before"] == a["after"] and not a.get("restored") and not a.get("cannot_add"):
            # Most members: nothing changes. Only the fields that say so, with shared empty values.
            rows.append({**a, "lost": (), "gained": (), "moved": (), "restored": (), "cannot_add": (),
                         "renamed": [tuple(r) for r in a["renamed"]] if a.get("renamed") else (), "change": "same"})
            continue
        before, after = set(a["before"]), set(a["after"])
        moved = [tuple(m) for m in a.get("moved", ())]
        restored = list(a.get("restored", ()))
        lost = sorted(before - after - {old for old, _ in moved})
        gained = sorted(after - before - {new for _, new in moved} - set(restored))
        cannot = list(a.get("cannot_add", ()))
        change = "lost" if lost else "moved" if moved else "gain" if gained or restored else "cannot" if cannot else "same"
        rows.append({**a, "lost": lost, "gained": gained, "moved": moved, "restored": restored, "cannot_add": cannot,
                     "renamed": [tuple(r) for r in a.get("renamed", ())], "change": change})
    order = {"lost": 0, "moved": 1, "gain": 2, "cannot": 3, "same": 4}
    rows.sort(key=lambda r: (order[r["change"]], r["email"]))
    return rows


def access_roles(plan):
    return sorted({role for a in plan["access"] for role in a["before"] + a["after"]})


def cell_state(row, role):
    if role in row["before"] and role in row["after"]:
        return "kept"
    if role in row["before"]:
        return "lost"
    if role in row["after"]:
        return "gain"
    return ""


def moves_text(row):
    return [f"moves from role {old} to permission group {new}, chosen by the mapping file" for old, new in row["moved"]]


def gains_text(row):
    why = row.get("why") or {}
    return ([f"gains {role}: restores access they do not have today" for role in row["restored"]]
            + [f"gains {role} ({why[role]})" if role in why else f"gains {role}" for role in row["gained"]])


def cannot_text(row):
    return [f"never had {role}; cannot be added (not an account member)" for role in row["cannot_add"]]


def renamed_text(row):
    return [f"{old} is now called {new}" for old, new in row["renamed"]]


def _loud(text):
    """The verb of a change in capitals, as the access picture marks them: "GAINS DNS"."""
    verb, _, rest = text.partition(" ")
    return f"{verb.upper()} {rest}"


def change_text(row):
    """The change of one member's access in words."""
    parts = ([f"LOSES {', '.join(row['lost'])}"] if row["lost"] else []) + [_loud(t) for t in moves_text(row) + gains_text(row)]
    parts += cannot_text(row)
    if parts:
        return "; ".join(parts)
    return f"no change ({'; '.join(renamed_text(row))})" if row["renamed"] else "no change"


def attention(plan, counts):
    """What an approver must not miss, worst first: (level, text)."""
    notes = []
    if plan["conflicts"]:
        names = ", ".join(reveal(c["name"]) for c in plan["conflicts"])
        notes.append(("bad", f"This plan cannot be applied: {len(plan['conflicts'])} target name(s) are taken by User Groups "
                             f"vgmigrate did not create ({names}). Plan again with --on-existing adopt or suffix."))
    if counts["lost"]:
        notes.append(("bad", f"{counts['lost']} member(s) would not keep all the access they have today through virtual "
                             "groups; see the access picture. They lose it when the CF- groups are removed."))
    if counts["moved"]:
        notes.append(("bad", f"{counts['moved']} member(s) would move from a role they hold today to another permission group, "
                             "chosen by the mapping file; see Decisions needed."))
    if counts["restored"]:
        notes.append(("bad", f"{counts['restored']} member(s) would gain a role their virtual group lists but Cloudflare does not "
                             "give them today; see Decisions needed."))
    if counts["gained"]:
        notes.append(("bad", f"{counts['gained']} member(s) would gain access they do not have today through virtual groups "
                             "(members of an adopted User Group gain its role); they are listed first in the access picture."))
    severe = dict(severity_counts(plan["findings"]))
    if severe["critical"]:
        notes.append(("bad", f"{severe['critical']} critical finding(s): read them before approving."))
    if counts["actions"].get("adopt"):
        notes.append(("warn", f"{counts['actions']['adopt']} existing User Group(s) will be adopted: vgmigrate adds a policy and "
                              "members to a group it did not create (rollback restores them exactly). Cloudflare's update "
                              "schema requires an id on every policy and a new policy has none, so vgmigrate proposes a fresh "
                              "one; if Cloudflare refuses it, that step fails and changes nothing."))
    if not plan["steps"]:
        notes.append(("ok", "Nothing to do: every planned group is already migrated."))
    return notes


def decisions(plan):
    """What the approver decides on, first, as sentences: (title, what to do, [subjects]) for name
    conflicts and how each was settled, members the mapping file moves to another permission
    group, members the plan gives a role they do not hold today, roles not migrated, and the other
    critical findings grouped by code. A CLI flag may follow a sentence, never be it."""
    out = []
    on_existing = plan["options"]["on_existing"]
    for c in plan["conflicts"]:
        out.append((f"A User Group named {reveal(c['name'])} already exists and vgmigrate did not create it ({c['members']} member(s))",
                    "Decide whether to create a new group beside it, or to take it over, which gives its members the role "
                    "(plan again with --on-existing suffix or adopt).", []))
    rows = access_rows(plan)
    for g in plan["groups"]:
        if g["action"] == "adopt":
            gains = [m["email"] or m["id"] for m in g.get("gains", [])]
            out.append((f"The existing User Group {reveal(g['name'])} is taken over: its {len(gains)} current member(s) gain "
                        f"{g['permission_group']['name']}", f"Check that each of them should have it (chosen with --on-existing {on_existing}).", gains))
        elif g.get("requested_name"):
            out.append((f"{reveal(g['requested_name'])} is taken by another User Group, so a new group {reveal(g['name'])} is created beside it",
                        f"Nothing to decide unless the name matters (chosen with --on-existing {on_existing}).", []))
    moves = {}
    for r in rows:
        for old, new in r["moved"]:
            moves.setdefault((old, new), []).append(r["email"])
    for (old, new), emails in sorted(moves.items()):
        out.append((f"{len(emails)} member(s) move from role {old} to permission group {new}, chosen by the mapping file; "
                    "this changes what they can do", f"Approve only if each of them should hold {new}; otherwise change the mapping "
                    "file and plan again (--mapping).", emails))
    restores = [f"{r['email']} ({', '.join(r['restored'])})" for r in rows if r["restored"]]
    if restores:
        out.append((f"{len(restores)} member(s) gain a role their virtual group lists but Cloudflare does not give them today",
                    "Approve only if each of them should have it back; otherwise take them out of the virtual group in the IdP, "
                    "then scan and plan again.", restores))
    unresolved = plan["skipped"]
    if unresolved:
        out.append((f"{len(unresolved)} virtual group(s) will not be migrated: their members keep the role only until the CF- "
                    "groups are removed", "See why under Not migrated; map each role to a permission group in a mapping file and "
                    "plan again (--mapping), or accept it.", [reveal(s["virtual_group"]) for s in unresolved]))
    restored = {r["email"] for r in rows if r["restored"]}
    critical = {}
    for f in plan["findings"]:
        if f["severity"] == "critical" and not (f["code"] == "role_not_held" and f["subject"] in restored):
            critical.setdefault(f["code"], []).append(f)
    for code, found in sorted(critical.items()):
        title = CRITICAL_SENTENCES.get(code, f"{found[0]['message']} ({code})")
        out.append((f"{len(found)} critical finding(s): {title}", found[0].get("action") or "", [reveal(f["subject"]) for f in found]))
    return out


CRITICAL_SENTENCES = {
    "no_super_admin_outside_scim": "no Super Administrator would be left outside SCIM, so a mistake in the IdP could lock everyone out",
    "role_not_held": "members of a virtual group that is not migrated do not hold its role in Cloudflare today",
}


def access_changes(plan):
    """[(kind, title, [(email, what, in words)])]: who loses, who moves, who gains and who cannot be
    added, each sorted by email. A member may be on more than one."""
    rows = access_rows(plan)
    return [
        ("lost", "Loses", [(r["email"], f"loses {', '.join(r['lost'])} when the CF- groups are removed") for r in rows if r["lost"]]),
        ("moved", "Moves", [(r["email"], "; ".join(moves_text(r))) for r in rows if r["moved"]]),
        ("gain", "Gains", [(r["email"], "; ".join(gains_text(r))) for r in rows if r["gained"] or r["restored"]]),
        ("cannot", "Cannot be added", [(r["email"], "; ".join(cannot_text(r))) for r in rows if r["cannot_add"]]),
    ]


def in_words(plan):
    """The report's first lines, (kind, title, who): who loses, who moves, who gains, who cannot be
    added, and that everyone else keeps their access, each with the first few names."""
    rows = access_rows(plan)

    def gained(r):
        why = r.get("why") or {}
        return ([f"{role}, which they do not hold today" for role in r["restored"]]
                + [f"{role}, {why[role]}" if role in why else role for role in r["gained"]])

    kinds = [
        ("lost", "Lose access when the CF- groups are removed", [(r["email"], r["lost"]) for r in rows if r["lost"]]),
        ("moved", "Move to another permission group, chosen by the mapping file",
         [(r["email"], [f"{old} to {new}" for old, new in r["moved"]]) for r in rows if r["moved"]]),
        ("gain", "Gain access", [(r["email"], gained(r)) for r in rows if r["gained"] or r["restored"]]),
        ("cannot", "Not account members: never had it, cannot be added", [(r["email"], r["cannot_add"]) for r in rows if r["cannot_add"]]),
    ]
    lines = []
    for kind, title, found in kinds:
        if found or kind in ("lost", "gain"):
            more = f" and {len(found) - SHOW_SUBJECTS} more" if len(found) > SHOW_SUBJECTS else ""
            who = ", ".join(f"{email} ({'; '.join(what)})" for email, what in found[:SHOW_SUBJECTS]) + more
            lines.append((kind, f"{title} ({len(found)})", who or "nobody"))
    same = [r for r in rows if r["change"] == "same"]
    renamed = sorted({f"{old} is now called {new}" for r in same for old, new in r["renamed"]})
    rest = f"{len(same)} member(s) keep exactly the access they have today"
    rest += f" ({len([r for r in same if r['renamed']])} of them under Cloudflare's new name: {'; '.join(renamed)})" if renamed else ""
    lines.append(("same", "Everyone else", rest))
    return lines


def signoff_text(plan):
    return (f"I have read this report and approve plan {plan['plan_id'][:12]} for account "
            f"{plan['account'].get('name') or plan['account']['id']}, with the changes of access and the decisions above.")


def signoff_fields(plan):
    """The sign-off block: (label, value); empty values are written in by hand."""
    return [("Plan id", plan["plan_id"]), ("Approver (name and role)", ""), ("Date", ""), ("Signature", "")]


def member_anchor(email):
    return "m-" + "".join(ch if ch.isalnum() else "-" for ch in str(email))


def summary_facts(plan, rehearsal, counts):
    actions = counts["actions"]
    groups = ", ".join(f"{actions.get(a, 0)} {label}" for a, label in (
        ("create", "to create"), ("adopt", "to adopt"), ("update", "to update"), ("none", "unchanged"), ("conflict", "blocked")))
    scope, where = scope_text(plan)
    facts = [
        ("Account", f"{plan['account'].get('name') or ''} ({plan['account']['id']})".strip()),
        ("Source", plan["source"]),
        ("Scan", f"#{plan['scan']['id']} finished {plan['scan']['finished_at']}"),
        ("Plan id", plan["plan_id"]),
        ("Created", f"{plan.get('created_at', '')} by {plan.get('tool', 'vgmigrate')}"),
        ("Options", f"mode {plan['options']['mode']}, name template {plan['options']['name_template']}, "
                    f"on existing {plan['options']['on_existing']}"
                    + (f", only {', '.join(plan['options']['only'])}" if plan["options"].get("only") else "")),
        ("User Groups", groups),
        ("Virtual groups", f"{counts['virtual_groups']} migrated, {counts['skipped']} not migrated"),
        ("Memberships to add", f"{counts['member_additions']} ({counts['members']} distinct members)"),
        ("Scope", f"{scope} ({where})"),
        *([(idp_name(plan["idp"]), idp_text(plan["idp"]))] if plan.get("idp") else []),
        ("API steps", str(len(plan["steps"]))),
        ("Findings", ", ".join(f"{n} {s}" for s, n in severity_counts(plan["findings"]))),
        ("Rehearsal", rehearsal_text(rehearsal)),
    ]
    return facts


IDP_SCOPES = {
    "listed": "only the groups in its scope; the new groups are added to it",
    "all": "every group (its group filter is empty), so the new groups sync as soon as they exist",
    "every group": "every group (this version has no group filter)",
}


def provider_words(idp):
    """"SCIM provider 'Cloudflare SCIM' (pk 3)", "app 'Cloudflare' (pk 0oa1)": what pushes to Cloudflare."""
    provider = idp["provider"]
    return f"{provider.get('kind') or 'SCIM provider'} {provider['name']!r} (pk {provider['pk']})"


def idp_text(idp):
    """The IdP side of an idp-mode plan, in a sentence."""
    return (f"groups are created in {idp_name(idp)} {idp.get('version') or '(version unknown)'} at {idp['url']} and pushed to "
            f"Cloudflare by {provider_words(idp)}, which pushes {IDP_SCOPES[idp['scope']]}; "
            "vgmigrate writes only the policies in Cloudflare")


def idp_lines(plan):
    """The IdP side of an idp-mode plan, one sentence per fact the approver signs off."""
    idp = plan.get("idp")
    if not idp:
        return []
    creates = [s for s in plan["steps"] if is_kind(s, CreateIdpGroup)]
    scoped = next((s for s in plan["steps"] if is_kind(s, ScopeIdpGroups)), None)
    missing = [m["email"] for g in plan["groups"] for m in g.get("not_in_idp", [])]
    lines = [
        f"{len(creates)} new {idp_name(idp)} group(s) at {idp['url']}, each with the members of its virtual group copied in "
        f"({sum(len(s['request']['users']) for s in creates)} memberships): {', '.join(s['target'] for s in creates) or 'none'}.",
        (f"{provider_words(idp).capitalize()} gets them added to its push scope in one step."
         if scoped else f"{provider_words(idp).capitalize()} already pushes every group: its scope is not touched."),
        "Each group is pushed on its own, and apply waits until Cloudflare holds it, locked to the IdP, with every member; "
        f"only then does vgmigrate attach the policy. From then on its name, members and deletion belong to {idp_name(idp)}.",
        "The old CF- groups keep granting their roles until vgmigrate cutover, after a clean verify.",
    ]
    if missing:
        lines.append(f"{len(missing)} member(s) have no {idp_name(idp)} user linked to the provider and are not copied: "
                     f"{', '.join(missing[:SHOW_SUBJECTS])}{' ...' if len(missing) > SHOW_SUBJECTS else ''}.")
    return lines


def rehearsal_text(rehearsal):
    if not rehearsal:
        return "not rehearsed"
    verdict = "passed" if rehearsal.get("passed") else "FAILED"
    return f"{verdict} against the sandbox ({rehearsal.get('calls', '?')} API calls) at {rehearsal.get('at', '?')}"


def group_rows(plan):
    """One row per virtual group -> User Group."""
    scope, _ = scope_text(plan)
    for g in plan["groups"]:
        for vg in g["virtual_groups"]:
            yield g, vg, scope


def sorted_members(group):
    return sorted(group["members"], key=lambda m: email_key(m.get("email")))


def step_target(step):
    return step["target"]


# ---- Markdown -------------------------------------------------------------------------------------------


def _markdown_lines(plan, rehearsal, plan_path):
    counts = plan_counts(plan)
    out = [f"# Migration plan for approval: {md_text(plan['account'].get('name') or plan['account']['id'])}", ""]
    out.append(f"Virtual groups to IAM User Groups. Plan `{plan['plan_id'][:12]}`; nothing has changed yet.")
    out.append("")
    for _, title, who in in_words(plan):
        out.append(f"- **{md_text(title)}:** {md_text(who)}")
    out.append("")
    out.append(md_table(["Item", "Value"], [
        [md_text(k), md_code(v) if k in ("Plan id",) else md_text(v)] for k, v in summary_facts(plan, rehearsal, counts)
    ]))
    notes = attention(plan, counts)
    if notes:
        out.append("")
        for level, text in notes:
            label = {"bad": "Attention", "warn": "Note", "ok": "OK"}[level]
            out.append(f"> **{label}:** {md_text(text)}")
            out.append(">")
        out.pop()

    out += _md_decisions(plan)

    out += ["", "## Sign-off", "", md_text(signoff_text(plan)), ""]
    out.append(md_table(["Sign-off", "Value"], [[md_text(k), md_code(v) if v else " "] for k, v in signoff_fields(plan)]))

    if plan.get("idp"):
        out += ["", f"## In {idp_name(plan['idp'])}", ""] + [f"- {md_text(line)}" for line in idp_lines(plan)]

    out += ["", "## To apply", "", "Run exactly this plan file (editing it changes its id and apply refuses it):", "",
            "```sh", apply_command(plan, plan_path), "```"]

    out += ["", "## User Groups", ""]
    rows = []
    for g, vg, scope in group_rows(plan):
        rows.append([
            md_text(g["step"]), md_code(vg["name"]), md_code(g["name"]) + _md_renamed(g), md_text(ACTION_LABELS.get(g["action"], g["action"])),
            md_text(g["permission_group"]["name"]), md_text(scope), str(len(g["members"])),
            md_text(RESOLUTION_LABELS.get(vg["resolution"], vg["resolution"] or "")),
        ])
    out.append(md_table(["Step", "Virtual group", "User Group", "Action", "Permission group", "Scope", "Members", "Role resolved by"], rows)
               if rows else "No virtual group can be migrated.")

    if plan["skipped"]:
        out += ["", "### Not migrated", ""]
        out.append(md_table(["Virtual group", "Why"], [[md_code(s["virtual_group"]), md_text(s["reason"])] for s in plan["skipped"]]))

    out += ["", "### Members", ""]
    for g in plan["groups"]:
        members = ", ".join(md_text(m["email"]) + (" (invitation pending)" if m.get("status") == "pending" else "") for m in sorted_members(g))
        out.append(f"- {md_code(g['name'], in_table=False)} ({len(g['members'])}): {members or 'none'}")

    out += ["", "## Findings", ""]
    if plan["findings"]:
        out.append(md_table(["Severity", "Code", "Subject", "Problem", "What to do"], [
            [f"**{f['severity']}**" if f["severity"] in ("critical", "error") else f["severity"], md_code(f["code"]),
             md_code(f["subject"]), md_text(f["message"]), md_text(f.get("action") or "")]
            for f in sorted_findings(plan["findings"])
        ]))
    else:
        out.append("No findings.")

    out += ["", "## Access before and after", ""]
    out += _md_access(plan)

    out += ["", "## Steps apply will take", ""]
    out.append(md_table(["#", "Step", "Does", "Target", "Waits for"], [
        [str(n), md_text(s["id"]), md_text(_step_does(s)), md_code(step_target(s)), md_text(", ".join(s.get("after") or []) or "-")]
        for n, s in enumerate(plan["steps"], 1)
    ]) if plan["steps"] else "None.")
    out += ["", f"_Generated from plan `{plan['plan_id']}`: its id is the SHA-256 of the content above._", ""]
    return out


SHOW_SUBJECTS = 5  # the first few names of a grouped decision; the rest are in the sections below


def _md_decisions(plan):
    out = ["", "## Decisions needed", ""]
    found = decisions(plan)
    for title, action, subjects in found:
        more = f" and {len(subjects) - SHOW_SUBJECTS} more" if len(subjects) > SHOW_SUBJECTS else ""
        names = f": {', '.join(md_text(x) for x in subjects[:SHOW_SUBJECTS])}{more}" if subjects else ""
        out.append(f"- **{md_text(title)}**{names}. {md_text(action)}")
    if not found:
        out.append("None: no name conflicts, every role resolved, no critical findings.")
    out += ["", "## Who loses and who gains access", ""]
    sections = [(title, found) for kind, title, found in access_changes(plan) if found or kind in ("lost", "gain")]
    if not any(found for _, found in sections):
        out.append("Nobody: everyone keeps exactly the access they have today.")
        return out
    for title, found in sections:
        out += [f"**{md_text(title)} ({len(found)})**", ""]
        out += [f"- **{md_text(email)}**: {md_text(what)}" for email, what in found] or ["- nobody"]
        out.append("")
    out.pop()
    return out


def _md_renamed(g):
    return f" (wanted {md_code(g['requested_name'])})" if g.get("requested_name") else ""


def _step_does(step):
    return describe(step)


MD_MARKS = {"kept": "\u2713", "lost": "**\u2717 loses**", "gain": "**+ gains**", "": ""}


def _md_access(plan):
    rows = access_rows(plan)
    if not rows:
        return ["No virtual group members."]
    roles = access_roles(plan)
    lines = ["Who has what through virtual groups today, and who will have it through User Groups. "
             "Differences come first and are marked: \u2713 kept, **\u2717 loses**, **+ gains**.", ""]
    # Rows are made as they are written: at 100,000 members the table is most of the report.
    if len(roles) <= MATRIX_MAX_ROLES:
        headers = ["Member"] + [md_text(r) for r in roles] + ["Change"]
        body = ([_md_member(r)] + [MD_MARKS[cell_state(r, role)] for role in roles] + [_md_change(r)] for r in rows)
    else:
        headers = ["Member", "Before (virtual groups)", "After (User Groups)", "Change"]
        body = ([_md_member(r), md_text(", ".join(r["before"])), md_text(", ".join(r["after"])), _md_change(r)] for r in rows)
    lines.append(joined(md_table_lines(headers, body)))
    return lines


def _md_member(row):
    return f"**{md_text(row['email'])}**" if row["change"] != "same" else md_text(row["email"])


def _md_change(row):
    text = md_text(change_text(row))
    return f"**{text}**" if row["change"] == "lost" else text


# ---- HTML --------------------------------------------------------------------------------------------------


def _html_parts(plan, rehearsal, plan_path):
    """(title, the page's parts)."""
    counts = plan_counts(plan)
    title = f"Migration plan for approval: {plan['account'].get('name') or plan['account']['id']}"
    parts = [f"<h1>{esc(title)}</h1>",
             f'<p class="sub">Virtual groups to IAM User Groups. Plan <code>{esc(plan["plan_id"][:12])}</code>; nothing has changed yet.</p>']
    parts.append('<ul class="inwords">' + "".join(f'<li class="{kind}"><strong>{esc(title)}:</strong> {esc(who)}</li>'
                                                 for kind, title, who in in_words(plan)) + "</ul>")
    facts = summary_facts(plan, rehearsal, counts)
    parts.append(html_table(["Item", "Value"], [[esc(k), f'<code class="planid">{esc(v)}</code>' if k == "Plan id" else esc(v)] for k, v in facts], cls="facts"))
    for level, text in attention(plan, counts):
        parts.append(f'<div class="banner {level}">{esc(text)}</div>')
    parts += _html_decisions(plan)

    parts.append(f"<h2>Sign-off</h2><p>{esc(signoff_text(plan))}</p>")
    parts.append(html_table(["Sign-off", "Value"], [[esc(k), f'<code class="planid">{esc(v)}</code>' if v else ""] for k, v in signoff_fields(plan)], cls="facts signoff"))
    if plan.get("idp"):
        parts.append(f"<h2>In {esc(idp_name(plan['idp']))}</h2><ul>" + "".join(f"<li>{esc(line)}</li>" for line in idp_lines(plan)) + "</ul>")
    parts.append("<h2>To apply</h2>")
    parts.append("<p>Run exactly this plan file (editing it changes its id and apply refuses it):</p>")
    parts.append(f'<pre class="command">{esc(apply_command(plan, plan_path))}</pre>')

    parts.append("<h2>User Groups</h2>")
    rows, classes = [], []
    for g, vg, scope in group_rows(plan):
        renamed = f' <span class="muted">(wanted {html_name(g["requested_name"])})</span>' if g.get("requested_name") else ""
        rows.append([
            esc(g["step"]), html_name(vg["name"]), html_name(g["name"]) + renamed,
            f'<span class="badge act-{esc(g["action"])}">{esc(ACTION_LABELS.get(g["action"], g["action"]))}</span>',
            esc(g["permission_group"]["name"]), esc(scope), esc(len(g["members"])),
            esc(RESOLUTION_LABELS.get(vg["resolution"], vg["resolution"] or "")),
        ])
        classes.append("lost" if g["action"] == "conflict" else "")
    parts.append(html_table(["Step", "Virtual group", "User Group", "Action", "Permission group", "Scope", "Members", "Role resolved by"], rows, classes)
                 if rows else "<p>No virtual group can be migrated.</p>")
    if plan["skipped"]:
        parts.append("<h3>Not migrated</h3>")
        parts.append(html_table(["Virtual group", "Why"], [[html_name(s["virtual_group"]), esc(s["reason"])] for s in plan["skipped"]],
                                ["lost"] * len(plan["skipped"])))

    parts.append("<h3>Members</h3>")
    pending = ' <span class="muted">(invitation pending)</span>'
    for g in plan["groups"]:
        items = "".join(f"<li>{esc(m['email'])}{pending if m.get('status') == 'pending' else ''}</li>" for m in sorted_members(g))
        noun = "member" if len(g["members"]) == 1 else "members"
        label = f'{html_name(g["name"])} <span class="muted">({len(g["members"])} {noun})</span>'
        if not g["members"]:
            parts.append(f"<p>{label}: none</p>")
        elif len(g["members"]) > FOLD_MEMBERS_OVER:
            parts.append(f'<details><summary>{label}</summary><ul class="members">{items}</ul></details>')
        else:
            parts.append(f'<div>{label}<ul class="members">{items}</ul></div>')

    parts.append("<h2>Findings</h2>")
    if plan["findings"]:
        parts.append(html_table(["Severity", "Code", "Subject", "Problem", "What to do"], [
            [f'<span class="badge sev-{esc(f["severity"])}">{esc(f["severity"])}</span>', f"<code>{esc(f['code'])}</code>",
             html_name(f["subject"]), esc(f["message"]), esc(f.get("action") or "")]
            for f in sorted_findings(plan["findings"])
        ], cls="findings"))
    else:
        parts.append("<p>No findings.</p>")

    parts.append("<h2>Access before and after</h2>")
    parts += _html_access(plan)

    parts.append("<h2>Steps apply will take</h2>")
    if plan["steps"]:
        step_rows = [[esc(n), esc(s["id"]), esc(_step_does(s)), html_name(step_target(s)), esc(", ".join(s.get("after") or []) or "-")]
                     for n, s in enumerate(plan["steps"], 1)]
        table = html_table(["#", "Step", "Does", "Target", "Waits for"], step_rows)
        parts.append(f"<details><summary>{len(plan['steps'])} API steps</summary>{table}</details>" if len(step_rows) > FOLD_UNCHANGED_OVER else table)
    else:
        parts.append("<p>None.</p>")
    parts.append(f"<footer>Generated from plan <code>{esc(plan['plan_id'])}</code>: its id is the SHA-256 of the content above. "
                 f"{esc(plan.get('tool', 'vgmigrate'))}.</footer>")
    return title, parts


def _html_decisions(plan):
    out = ["<h2>Decisions needed</h2>"]
    found = decisions(plan)
    if found:
        items = []
        for title, action, subjects in found:
            more = f" and {len(subjects) - SHOW_SUBJECTS} more" if len(subjects) > SHOW_SUBJECTS else ""
            shown = ", ".join(f'<span class="nowrap">{esc(x)}</span>' for x in subjects[:SHOW_SUBJECTS])
            names = f": {shown}{esc(more)}" if subjects else ""
            items.append(f"<li><strong>{esc(title)}</strong>{names}. {esc(action)}</li>")
        out.append(f'<ul class="decisions">{"".join(items)}</ul>')
    else:
        out.append("<p>None: no name conflicts, every role resolved, no critical findings.</p>")
    out.append("<h2>Who loses and who gains access</h2>")
    sections = [(kind, title, found) for kind, title, found in access_changes(plan) if found or kind in ("lost", "gain")]
    if not any(found for _, _, found in sections):
        out.append('<div class="banner ok">Nobody: everyone keeps exactly the access they have today.</div>')
        return out

    def column(kind, title, rows):
        items = "".join(f'<li><a class="email" href="#{esc(member_anchor(e))}">{esc(e)}</a>: {esc(t)}</li>' for e, t in rows)
        return f'<div class="side {kind}"><h3>{esc(title)} ({len(rows)})</h3><ul>{items or "<li>nobody</li>"}</ul></div>'

    out.append(f'<div class="sides">{"".join(column(*section) for section in sections)}</div>')
    return out


HTML_MARKS = {"kept": "\u2713", "lost": "\u2717 loses", "gain": "+ gains", "": ""}


def _html_access(plan):
    rows = access_rows(plan)
    if not rows:
        return ["<p>No virtual group members.</p>"]
    roles = access_roles(plan)
    out = ['<p>Who has what through virtual groups today, and who will have it through User Groups. Differences come first: '
           '<span class="lost">\u2717 loses</span> (highlighted rows), <span class="gain">+ gains</span>, \u2713 kept.</p>']
    matrix = len(roles) <= MATRIX_MAX_ROLES
    if matrix:
        headers = ["Member"] + [esc(r) for r in roles] + ["Change"]
    else:
        headers = ["Member", "Before (virtual groups)", "After (User Groups)", "Change"]

    def row(r):
        anchor = f'<a id="{esc(member_anchor(r["email"]))}"></a>'
        member = anchor + (f"<strong>{esc(r['email'])}</strong>" if r["change"] != "same" else esc(r["email"]))
        change = f'<span class="{r["change"]}">{esc(change_text(r))}</span>' if r["change"] != "same" else esc(change_text(r))
        if matrix:
            cells = [f'<span class="{s}">{HTML_MARKS[s]}</span>' if s else "" for s in (cell_state(r, role) for role in roles)]
        else:
            cells = [esc(", ".join(r["before"])), esc(", ".join(r["after"]))]
        return [member, *cells, change]

    def render(subset):
        # Rows are made as they are written: at 100,000 members the table is most of the report.
        classes = (r["change"] if r["change"] != "same" else "" for r in subset)
        return html_table_chunks(headers, map(row, subset), classes, cls="matrix" if matrix else None)

    changed = [r for r in rows if r["change"] != "same"]
    same = [r for r in rows if r["change"] == "same"]
    if changed:
        out.append(render(changed))
    else:
        out.append('<div class="banner ok">Everyone keeps exactly the access they have today.</div>')
    if same:
        title = f"{len(same)} member(s) keep exactly the access they have today"
        opening, closing = ((f"<details><summary>{esc(title)}</summary>", "</details>") if len(same) > FOLD_UNCHANGED_OVER
                            else (f"<h3>{esc(title)}</h3>", ""))
        out.append(chain([opening], render(same), [closing]))
    return out


def render(plan, fmt, rehearsal=None, plan_path="plan.json"):
    """The approval report for `plan` (a sealed plan dict) as "markdown" or "html"."""
    return "".join(render_chunks(plan, fmt, rehearsal, plan_path))


def render_chunks(plan, fmt, rehearsal=None, plan_path="plan.json"):
    """render() piece by piece: at 100,000 members the report is ~30 MB, and written as it comes it
    is never held whole (nor encoded whole) beside the plan."""
    if fmt == "markdown":
        return joined(_markdown_lines(plan, rehearsal, plan_path))
    if fmt == "html":
        return html_page_chunks(*_html_parts(plan, rehearsal, plan_path))
    raise ValueError(f"unknown report format {fmt!r}; use markdown or html")
