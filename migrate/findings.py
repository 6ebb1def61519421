"""Pure analysis of one scan: virtual groups -> parsed names, resolved roles, members and findings."""

from collections import Counter
from dataclasses import asdict, dataclass

from .errors import VgmigrateError
from .names import VARIANTS, parse_virtual_group_name, quoted
from . import iam
from .iam import SUPER_ADMIN, email_key, name_key
from .roles import role_resolver

# The finding a plan refuses to go ahead with unless the approver allows it (--allow-no-break-glass).
NO_BREAK_GLASS = "no_super_admin_outside_scim"

SEVERITIES = ("critical", "error", "warning", "info")


@dataclass(frozen=True)
class Finding:
    severity: str  # critical | error | warning | info
    code: str
    subject: str
    message: str
    action: str = ""  # what to do about it

    def as_row(self):
        return asdict(self)

    @classmethod
    def from_row(cls, row):
        return cls(**{k: row[k] for k in ("severity", "code", "subject", "message", "action")})


def sort_findings(findings):
    return sorted(findings, key=lambda f: (SEVERITIES.index(f.severity), f.code, f.subject))


def member_fields(member, account_id, shared=None):
    """What `analyse` needs of an account member as listed: id, email, status, and what gives it
    access by itself (iam.member_grants: its legacy roles and own policies). A scan keeps only this
    for each of its (maybe 50,000) members: the listing carries every role expanded with its
    permissions, ten times the size. Plain strings and tuples, so the garbage collector need not
    walk them. `shared` (a dict for one scan) keeps one copy of each distinct grants tuple: most
    members hold one of a few combinations."""
    grants = iam.member_grants(member, account_id)
    return {
        "id": member["id"],
        "email": email_key(member.get("email") or (member.get("user") or {}).get("email")),
        "status": member.get("status"),
        "grants": grants if shared is None else shared.setdefault(grants, grants),
    }


def analyse(account_id, virtual_groups, permission_groups, members, user_groups, mapping=None, own_group_ids=frozenset(),
            group_members=()):
    """Returns (virtual_group_rows, membership_rows, findings, held_access_rows) for the inventory. No I/O.

    `members` are the `member_fields` of the account members. `own_group_ids` are User Groups that
    vgmigrate itself created: they are not name collisions. `group_members`: the user_group_members
    rows read (a member holds what its User Groups grant, as iam.held_access counts it).
    """
    members_by_email = {m["email"]: m for m in members if m.get("email")}
    held = _held_by_email(account_id, members_by_email, user_groups, group_members)
    resolve = role_resolver(permission_groups, mapping)
    vg_rows, vgm_rows, findings = [], [], []
    for vg in virtual_groups:
        parsed = parse_virtual_group_name(vg.name)
        if parsed is None:
            findings.append(
                Finding("warning", "malformed_name", vg.name, "starts like a virtual group but is not CF-<32 hex account id> - <Role Name>",
                        "rename it in the IdP, or ignore it if it is not a virtual group")
            )
            continue
        row = {
            "id": vg.id,
            "name": vg.name,
            "account_id": parsed.account_id,
            "role": parsed.role,
            "variants": list(parsed.variants),
            "raw": vg.raw,
        }
        if parsed.variants:
            findings.append(
                Finding("warning", "name_variant", vg.name, f"non-canonical name ({'; '.join(VARIANTS[v] for v in parsed.variants)}); read as role {parsed.role!r}",
                        f"check that {parsed.canonical!r} is what was meant")
            )
        if parsed.account_id != account_id:
            row.update(resolution="foreign_account", resolution_message=f"names account {parsed.account_id}, not the scanned account")
            findings.append(
                Finding("error", "foreign_account", vg.name, f"grants a role in account {parsed.account_id}, not {account_id}; it will not be migrated here",
                        "scan that account separately, or remove the stale group in the IdP")
            )
        else:
            res = resolve(parsed.role)
            pg = res.permission_group or {}
            row.update(
                resolution=res.status,
                method=res.method,
                permission_group_id=pg.get("id"),
                permission_group_name=pg.get("name"),
                resolution_message=res.message,
            )
            if res.status != "resolved":
                findings.append(Finding("error", f"{res.status}_role", vg.name, res.message, "map the role to a permission group in a mapping file and plan again with --mapping"))
            elif res.method in ("rename", "mapping"):
                how = "the built-in rename table" if res.method == "rename" else "your mapping file"
                findings.append(Finding("info", f"resolved_by_{res.method}", vg.name, f"{parsed.role!r} -> {pg.get('name')!r} through {how}", "confirm the permission group is the intended one"))
        vg_rows.append(row)
        names = _names_granted(row)
        for email in vg.member_emails:
            member = members_by_email.get(email)
            vgm_rows.append(
                {
                    "virtual_group_id": vg.id,
                    "email": email,
                    "member_id": member["id"] if member else None,
                    "member_status": member.get("status") if member else None,
                    "holds": None if member is None else int(not names.isdisjoint(held[email])),
                }
            )
            if member is None:
                findings.append(Finding("warning", "not_an_account_member", email, f"is in {quoted(vg.name)} but is not a member of the account; they cannot be added to a User Group",
                                        "invite them to the account first if they still need access"))
            elif member.get("status") == "pending":
                findings.append(Finding("warning", "pending_invitation", email, f"is in {quoted(vg.name)} but has not accepted the account invitation",
                                        "they will be added to the User Group; the access starts when they accept"))
    others = [g for g in user_groups if g["id"] not in own_group_ids]
    supers = _independent_supers(account_id, members_by_email, held, vg_rows, vgm_rows, user_groups, group_members)
    findings += _cross_checks(account_id, vg_rows, vgm_rows, others, supers)
    access = held_access_rows(members_by_email, held, vg_rows, vgm_rows, permission_groups)
    return vg_rows, vgm_rows, sort_findings(findings), access


def _names_granted(vg_row):
    """The name keys under which a member holds what a virtual group grants: its role as the group
    names it, and the permission group that role resolved to (a renamed or mapped role is held under
    its new name)."""
    return {name_key(vg_row.get("role")), name_key(vg_row.get("permission_group_name"))} - {""}


def _held_by_email(account_id, members_by_email, user_groups, group_members, counts=lambda group: True):
    """Email -> iam.held_access of each account member: its own grants and those of the User
    Groups it is in. A group `counts` rejects keeps only its denies (they take access back anyway)."""
    groups = {g["id"]: g for g in user_groups}
    grants, in_groups = {}, {}
    for link in group_members:
        group = groups.get(link["user_group_id"])
        if group is not None:
            if group["id"] not in grants:
                through, via, allowed, denied = iam.group_grant(group["name"], group.get("policies"), account_id)
                grants[group["id"]] = (through, via, allowed if counts(group) else (), denied)
            in_groups.setdefault(link["member_id"], []).append(grants[group["id"]])
    # Most members hold the same few combinations: one held_access per combination, shared (and
    # never changed), rather than a dict per member (50,000 members: ~30 MB and a second of CPU).
    shared = {}
    held = {}
    for email, m in members_by_email.items():
        grants = (*m["grants"], *in_groups.get(m["id"], ()))
        if grants not in shared:
            shared[grants] = iam.held_access(grants)
        held[email] = shared[grants]
    return held


def _independent_supers(account_id, members_by_email, held, vg_rows, vgm_rows, user_groups, group_members):
    """Emails of accepted members who hold Super Administrator by a direct grant, independent of
    SCIM: a legacy role or an own policy, and no virtual group for it lists them (Cloudflare cannot
    tell what it gave from a direct grant). A User Group's allow does not count (the IdP may own
    the group, and the cutover checks direct grants only), but its deny still takes the role back."""
    super_admin = name_key(SUPER_ADMIN)
    super_vgs = {r["id"] for r in vg_rows if r.get("account_id") == account_id and super_admin in _names_granted(r)}
    in_super_vg = {link["email"] for link in vgm_rows if link["virtual_group_id"] in super_vgs}
    candidates = {e: m for e, m in members_by_email.items()
                  if m.get("status") == "accepted" and e not in in_super_vg and super_admin in held[e]}
    direct = _held_by_email(account_id, candidates, user_groups, group_members, counts=lambda group: False)
    return {email for email, access in direct.items() if super_admin in access}


def held_access_rows(members_by_email, held, vg_rows, vgm_rows, permission_groups):
    """held_access rows, made as they are staged: per account member, each permission group held
    and through what. A legacy role a virtual group of the member's grants is shown as held through
    that virtual group; a role under an old name is named by its permission group today (exact,
    normalised or rename table: the same role; a mapping file's choice is another role, so it is not
    used here)."""
    same_role = role_resolver(permission_groups)
    names = {}

    def current(name):
        if name not in names:
            res = same_role(name)
            names[name] = res.permission_group["name"] if res.status == "resolved" else name
        return names[name]

    vgs = {r["id"]: r for r in vg_rows}
    member_vgs = {}
    for link in vgm_rows:
        if link["holds"]:
            member_vgs.setdefault(link["email"], []).append(vgs[link["virtual_group_id"]])
    for email, access in held.items():
        member_id = members_by_email[email]["id"]
        for key, (name, ways) in sorted(access.items()):
            seen = set()
            for through, via in ways:
                found = [vg["name"] for vg in member_vgs.get(email, ()) if key in _names_granted(vg)] if through == iam.LEGACY_ROLE else []
                for row in [(iam.VIRTUAL_GROUP, v) for v in found] or [(through, via)]:
                    if row not in seen:
                        seen.add(row)
                        yield {"member_id": member_id, "email": email, "permission_group": current(name), "held_as": name,
                               "through": row[0], "via": row[1]}


def _cross_checks(account_id, vg_rows, vgm_rows, user_groups, independent_supers):
    findings = []
    resolved = {r["id"]: r for r in vg_rows if r.get("resolution") == "resolved"}

    # A member who does not hold the role their virtual group granted (through anything, under its
    # old or its new name) may already have lost access.
    for link in vgm_rows:
        if link["virtual_group_id"] in resolved and link["holds"] == 0:
            vg = resolved[link["virtual_group_id"]]
            findings.append(
                Finding("critical", "role_not_held", link["email"], f"is in {quoted(vg['name'])} but does not hold {vg['permission_group_name']!r} in Cloudflare; they may already have lost this access",
                        "migrate this group first and verify; confirm with the member that access is restored")
            )

    # Two virtual groups for one permission group become one User Group.
    by_pg = {}
    for vg in resolved.values():
        by_pg.setdefault(vg["permission_group_id"], []).append(vg["name"])
    for names in by_pg.values():
        if len(names) > 1:
            findings.append(Finding("warning", "same_permission_group", " | ".join(sorted(names)), "these virtual groups grant the same permission group; their members are merged into one User Group",
                                    "nothing, unless they were meant to grant different roles"))

    # Someone must keep Super Administrator without depending on SCIM.
    if not independent_supers:
        findings.append(Finding("critical", NO_BREAK_GLASS, account_id, "no accepted Super Administrator holds the role outside the virtual groups; a SCIM mistake could lock everyone out",
                                "grant Super Administrator directly to a break-glass member before migrating"))

    # A target name already taken by an existing User Group (default template: the permission group name).
    existing = {name_key(g["name"]): g for g in user_groups}
    for vg in resolved.values():
        taken = existing.get(name_key(vg["permission_group_name"]))
        if taken:
            findings.append(Finding("warning", "name_taken", vg["name"], f"an existing User Group is already named {quoted(taken['name'])} (id {taken['id']})",
                                    "plan with --on-existing adopt|suffix, or a different --name-template"))
    return findings


def severity_counts(findings):
    counts = Counter(f["severity"] for f in findings)
    return [(s, counts.get(s, 0)) for s in SEVERITIES]


def sorted_findings(findings):
    """Worst first; the plan already sorts them, but a report must not depend on that."""
    rank = {s: i for i, s in enumerate(SEVERITIES)}
    return sorted(findings, key=lambda f: rank.get(f["severity"], len(rank)))


def shown_scan(data, group=None, severity=None, code=None):
    """What `vgmigrate inventory` shows of a loaded scan: the virtual groups whose name or role
    contains `group` (any case) with the findings about them or their members, then only the
    findings of `severity` and `code`. Returns (groups, findings, the scan's rows filtered alike
    for --json); a code no finding has is a one-line error."""
    groups = data["virtual_groups"]
    findings = [Finding.from_row(f) for f in data["findings"]]
    if group:
        groups = [g for g in groups if name_key(group) in name_key(g["name"]) or name_key(group) in name_key(g["role"])]
        names = {g["name"] for g in groups} | {link["email"] for g in groups for link in data["virtual_group_members"] if link["virtual_group_id"] == g["id"]}
        findings = [f for f in findings if f.subject in names or any(n in f.message for n in names)]
    if severity:
        findings = [f for f in findings if f.severity == severity]
    if code:
        findings = [f for f in findings if f.code == code]
        if not findings:
            raise VgmigrateError(f"no finding with code {code!r} in scan {data['scan']['id']}; `vgmigrate inventory` lists the codes found")
    shown = {g["id"] for g in groups}
    kept = {tuple(f.as_row().values()) for f in findings}
    rows = {**data, "virtual_groups": groups,
            "virtual_group_members": [m for m in data["virtual_group_members"] if m["virtual_group_id"] in shown],
            "findings": [row for row in data["findings"] if tuple(Finding.from_row(row).as_row().values()) in kept]}
    return groups, findings, rows
