"""Pure analysis of one scan: virtual groups -> parsed names, resolved roles, members and findings."""

from dataclasses import asdict, dataclass

from .names import VARIANTS, parse_virtual_group_name, quoted
from .iam import email_key, held_permission_group_names, name_key
from .roles import role_resolver

SEVERITIES = ("critical", "error", "warning", "info")
SUPER_ADMIN = "Super Administrator - All Privileges"


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


def member_fields(member, account_id):
    """What `analyse` needs of an account member as listed: id, email, status, and the name keys
    of the roles it holds directly on the whole account. A scan keeps only this for each of its (maybe 50,000)
    members: the listing carries every role expanded with its permissions, ten times the size. Plain
    strings and a tuple, so the garbage collector need not walk them."""
    return {
        "id": member["id"],
        "email": email_key(member.get("email") or (member.get("user") or {}).get("email")),
        "status": member.get("status"),
        "held_roles": tuple(sorted(held_permission_group_names(member, account_id))),
    }


def analyse(account_id, virtual_groups, permission_groups, members, user_groups, mapping=None, own_group_ids=frozenset()):
    """Returns (virtual_group_rows, membership_rows, findings) for the inventory. No I/O.

    `members` are the `member_fields` of the account members. `own_group_ids` are User Groups that
    vgmigrate itself created: they are not name collisions.
    """
    members_by_email = {m["email"]: m for m in members if m.get("email")}
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
        for email in vg.member_emails:
            member = members_by_email.get(email)
            vgm_rows.append(
                {
                    "virtual_group_id": vg.id,
                    "email": email,
                    "member_id": member["id"] if member else None,
                    "member_status": member.get("status") if member else None,
                }
            )
            if member is None:
                findings.append(Finding("warning", "not_an_account_member", email, f"is in {quoted(vg.name)} but is not a member of the account; they cannot be added to a User Group",
                                        "invite them to the account first if they still need access"))
            elif member.get("status") == "pending":
                findings.append(Finding("warning", "pending_invitation", email, f"is in {quoted(vg.name)} but has not accepted the account invitation",
                                        "they will be added to the User Group; the access starts when they accept"))
    others = [g for g in user_groups if g["id"] not in own_group_ids]
    findings += _cross_checks(account_id, vg_rows, vgm_rows, members_by_email, others)
    return vg_rows, vgm_rows, sort_findings(findings)


def _cross_checks(account_id, vg_rows, vgm_rows, members_by_email, user_groups):
    findings = []
    resolved = {r["id"]: r for r in vg_rows if r.get("resolution") == "resolved"}

    # A member who no longer holds the role their virtual group granted may already have lost access.
    # (Per group, the names that count as holding it: worked out once, not once per member.)
    granted = {vg_id: {name_key(vg["role"]), name_key(vg["permission_group_name"])} for vg_id, vg in resolved.items()}
    for link in vgm_rows:
        names = granted.get(link["virtual_group_id"])
        member = members_by_email.get(link["email"])
        if not names or not member:
            continue
        if names.isdisjoint(member["held_roles"]):
            vg = resolved[link["virtual_group_id"]]
            findings.append(
                Finding("critical", "role_not_held", link["email"], f"is in {vg['name']!r} but does not hold {vg['permission_group_name']!r} in Cloudflare; they may already have lost this access",
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
    super_admin = name_key(SUPER_ADMIN)
    super_vgs = {r["id"] for r in vg_rows if name_key(r.get("permission_group_name")) == super_admin}
    in_super_vg = {link["email"] for link in vgm_rows if link["virtual_group_id"] in super_vgs}
    direct_supers = [
        email for email, m in members_by_email.items()
        if super_admin in m["held_roles"] and email not in in_super_vg and m.get("status") == "accepted"
    ]
    if not direct_supers:
        findings.append(Finding("critical", "no_super_admin_outside_scim", account_id, "no accepted Super Administrator holds the role outside the virtual groups; a SCIM mistake could lock everyone out",
                                "grant Super Administrator directly to a break-glass member before migrating"))

    # A target name already taken by an existing User Group (default template: the permission group name).
    existing = {name_key(g["name"]): g for g in user_groups}
    for vg in resolved.values():
        taken = existing.get(name_key(vg["permission_group_name"]))
        if taken:
            findings.append(Finding("warning", "name_taken", vg["name"], f"an existing User Group is already named {quoted(taken['name'])} (id {taken['id']})",
                                    "plan with --on-existing adopt|suffix, or a different --name-template"))
    return findings
