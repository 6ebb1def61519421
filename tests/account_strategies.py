"""Hypothesis strategies: small Cloudflare accounts (sandbox seeds) of every shape real ones have.

`accounts()` draws a seed in the format of `migrate/sandbox/seeds.py`. Each part is drawn
independently, so a failing account shrinks to the few objects the failure needs:

- resource groups: 0..N account-wide (`*`) and zone-scoped (one zone object), named or unnamed,
  with ids in any order (the engine reuses the lowest account-wide id);
- account members: accepted or pending, emails in mixed case on Cloudflare's side (the IdP sends
  lower case), with direct legacy roles and direct policies (allow or deny, account-wide or on one
  domain, account- or zone-scoped permission groups);
- existing User Groups: with and without members and policies (allow/deny, zone-scoped), some
  named like a target in any case (`dns`, `DNS`, `Firewall (2)`), some SCIM-managed (locked);
- virtual groups: 0..k members, names in canonical and variant spellings (`cf-`, upper-case hex,
  no spaces, an en dash, doubled or odd whitespace, invisible characters, padding), roles written in
  any case, renamed roles, unresolvable roles, foreign accounts, two groups for one role;
- members of virtual groups who are not account members (SCIM users with no membership), and
  members who no longer hold the role their virtual group granted.
"""

from hypothesis import strategies as st

ACCT = "5a" * 16
FOREIGN = "e0" * 16
KEY = f"com.cloudflare.api.account.{ACCT}"
ZONES = ["c1" * 16, "c2" * 16]


def tag(n):
    return f"{n:032x}"


# Account-scoped permission groups a virtual group can grant (name -> id); each has a legacy role
# of the same name, which is what a virtual group gives its members.
ACCOUNT_PGS = {
    "Administrator": tag(0x1001),
    "DNS": tag(0x1002),
    "Firewall": tag(0x1003),
    "Super Administrator - All Privileges": tag(0x1004),
    "Workers Platform Admin": tag(0x1005),
}
ZONE_PGS = {"Domain DNS": tag(0x1101)}  # domain-scoped: only ever bound to zones
ALL_PGS = {**ACCOUNT_PGS, **ZONE_PGS}
ROLE_OF = {name: "r" + pid[-5:] for name, pid in ACCOUNT_PGS.items()}  # role ids, as legacy roles

# How an IdP may spell a role in a virtual group name -> the permission group it resolves to
# (None: it resolves to nothing, and the group is reported, not migrated).
VG_ROLES = {
    "Administrator": "Administrator",
    "administrator": "Administrator",
    "DNS": "DNS",
    "dns": "DNS",
    "Dns": "DNS",
    "Firewall": "Firewall",
    "FIREWALL": "Firewall",
    "Super Administrator - All Privileges": "Super Administrator - All Privileges",
    "Cloudflare Workers Admin": "Workers Platform Admin",  # the built-in rename table
    "Domain DNS": None,  # zone-scoped: never a virtual group's role
    "Legacy Billing": None,  # no such permission group
}

SPELLINGS = {
    "canonical": lambda acct, role: f"CF-{acct} - {role}",
    "lower prefix": lambda acct, role: f"cf-{acct} - {role}",
    "upper hex": lambda acct, role: f"CF-{acct.upper()} - {role}",
    "no spaces": lambda acct, role: f"CF-{acct}-{role}",
    "en dash": lambda acct, role: f"CF-{acct} \u2013 {role}",
    "double space": lambda acct, role: f"CF-{acct}  -  {role}",
    "tab": lambda acct, role: f"CF-{acct}\t-\t{role}",
    "no-break space": lambda acct, role: f"CF-{acct}\u00a0- {role}",
    "zero-width": lambda acct, role: f"CF-{acct} - \u200b{role}",
    "padded": lambda acct, role: f" CF-{acct} - {role} ",
}

# Existing User Group names: targets in any case, a taken suffix, and unrelated names.
USER_GROUP_NAMES = [
    "DNS", "dns", "Dns", "Firewall", "FIREWALL", "Administrator", "administrator",
    "Workers Platform Admin", "Super Administrator - All Privileges",
    "DNS (2)", "Firewall (2)", "dns (3)", "Ops", "Everyone",
]

LOCAL_PARTS = ["ada", "bo", "cy", "dee", "eve", "fay", "gus", "hal"]


def _cased(text, how):
    """The email as Cloudflare may store it: any case (the IdP sends lower case)."""
    if how == "lower":
        return text.lower()
    if how == "title":
        return text[:1].upper() + text[1:]
    if how == "upper":
        return text.upper()
    return "".join(c.upper() if i % 2 else c for i, c in enumerate(text))


@st.composite
def resource_groups(draw, max_size=4):
    ids = draw(st.lists(st.integers(0x100, 0x1FF), unique=True, max_size=max_size))
    groups = []
    for n, rid in enumerate(ids):
        zone = draw(st.sampled_from([None, *ZONES]))  # None: the whole account
        scope = {"key": KEY, "objects": [{"key": "*" if zone is None else f"com.cloudflare.api.account.zone.{zone}"}]}
        group = {"id": tag(rid), "scope": scope}
        named = draw(st.sampled_from(["named", "unnamed", "scope key"]))
        if named == "named":
            group["name"] = f"rg {n}"
        elif named == "scope key":
            group["name"] = KEY  # how Cloudflare names the account-wide group it makes
        groups.append(group)
    return groups


@st.composite
def policies(draw, rg_ids, max_size=2):
    """Policies on the drawn resource groups (none when there are none)."""
    if not rg_ids:
        return []
    drawn = draw(st.lists(
        st.tuples(
            st.sampled_from(["allow", "deny"]),
            st.lists(st.sampled_from(sorted(ALL_PGS)), min_size=1, max_size=2, unique=True),
            st.lists(st.sampled_from(rg_ids), min_size=1, max_size=2, unique=True),
        ),
        max_size=max_size,
    ))
    return [
        {"access": access, "permission_groups": [{"id": ALL_PGS[p]} for p in pgs], "resource_groups": [{"id": r} for r in rgs]}
        for access, pgs, rgs in drawn
    ]


@st.composite
def accounts(draw, max_members=5, max_virtual_groups=4, max_user_groups=3, max_outsiders=2):
    """A sandbox seed; see the module docstring for the shapes."""
    rgs = draw(resource_groups())
    rg_ids = [rg["id"] for rg in rgs]

    # Account members, each drawn whole so that shrinking can drop any one of them; a member's
    # ids come from its email, so dropping one renumbers nothing. A break-glass Super
    # Administrator is a direct role like any other.
    specs = draw(st.lists(
        st.tuples(st.sampled_from(LOCAL_PARTS), st.sampled_from(["lower", "title", "upper", "mixed"]),
                  st.sampled_from(["accepted", "accepted", "pending"]),
                  st.lists(st.sampled_from(sorted(ROLE_OF.values())), max_size=2, unique=True), policies(rg_ids)),
        min_size=1, max_size=max_members, unique_by=lambda spec: spec[0],
    ))
    members = []
    for local, casing, status, roles, direct in specs:
        n = LOCAL_PARTS.index(local)
        email = _cased(f"{local}@example.com", casing)
        members.append({
            "id": tag(0x3000 + n),
            "email": email,
            "status": status,
            "user": {"id": tag(0x4000 + n), "email": email, "first_name": local.title(), "last_name": "Example",
                     "two_factor_authentication_enabled": True},
            "roles": list(roles),
            "policies": direct,
        })
    member_ids = [m["id"] for m in members]

    # Existing User Groups; ids come from the name, so dropping one renumbers nothing.
    member_subsets = st.lists(st.sampled_from(member_ids), max_size=3, unique=True)
    drawn = draw(st.lists(
        st.tuples(st.sampled_from(USER_GROUP_NAMES), policies(rg_ids), member_subsets, st.booleans()),
        max_size=max_user_groups, unique_by=lambda spec: spec[0],
    ))
    user_groups = [
        {"id": tag(0x2000 + USER_GROUP_NAMES.index(name)), "name": name, "policies": group_policies,
         "members": group_members, "scim_managed": scim_managed}
        for name, group_policies, group_members, scim_managed in drawn
    ]

    # Virtual groups: (role spelling, name spelling, account); the SCIM id comes from all three.
    vgs = draw(st.lists(
        st.tuples(st.sampled_from(sorted(VG_ROLES)), st.sampled_from(sorted(SPELLINGS)),
                  st.sampled_from([ACCT, ACCT, ACCT, FOREIGN])),
        max_size=max_virtual_groups, unique=True,
    ))
    scim_groups, pg_of_vg = [], {}
    for role, spelling, acct in vgs:
        gid = f"cloudflare-v1-{sorted(VG_ROLES).index(role)}-{sorted(SPELLINGS).index(spelling)}-{acct[:2]}"
        pg = VG_ROLES[role] if acct == ACCT else None
        scim_groups.append({"id": gid, "displayName": SPELLINGS[spelling](acct, role), "system": True,
                            "role": ROLE_OF[pg] if pg else None})
        pg_of_vg[gid] = pg

    # Who is in which virtual group: account members and outsiders (no account membership).
    n_outsiders = draw(st.integers(0, max_outsiders))
    people = [(m["user"]["id"], m["email"].lower(), m) for m in members]
    people += [(tag(0x5000 + n), f"ghost{n}@example.com", None) for n in range(n_outsiders)]
    scim_users = []
    for user_id, user_name, member in people:
        groups = draw(st.lists(st.sampled_from([g["id"] for g in scim_groups]), max_size=2, unique=True)) if scim_groups else []
        if not groups and member is not None and not draw(st.booleans()):
            continue  # not every account member is a SCIM user
        scim_users.append({"id": user_id, "userName": user_name, "active": True, "groups": groups})
        if member is None:
            continue
        for gid in groups:  # the role the virtual group granted, unless the member lost it since
            pg = pg_of_vg[gid]
            if pg and ROLE_OF[pg] not in member["roles"] and draw(st.sampled_from([True, True, True, False])):
                member["roles"].append(ROLE_OF[pg])

    return account(members=members, resource_groups=rgs, user_groups=user_groups, scim_groups=scim_groups,
                   scim_users=scim_users)


def account(members=(), resource_groups=(), user_groups=(), scim_groups=(), scim_users=()):
    """A seed with the fixed catalogue (permission groups, roles) and these parts; also how a test
    writes down a minimal failing account by hand."""
    return {
        "account": {"id": ACCT, "name": "Generated Inc", "type": "enterprise"},
        "permission_groups": [
            {"id": pid, "name": name, "meta": {"label": name.lower(), "scopes": "com.cloudflare.api.account"}}
            for name, pid in ACCOUNT_PGS.items()
        ] + [
            {"id": pid, "name": name, "meta": {"label": name.lower(), "scopes": "com.cloudflare.api.account.zone"}}
            for name, pid in ZONE_PGS.items()
        ],
        "roles": [{"id": rid, "name": name, "description": "", "permissions": {}} for name, rid in ROLE_OF.items()],
        "members": list(members),
        "resource_groups": list(resource_groups),
        "user_groups": list(user_groups),
        "scim_groups": list(scim_groups),
        "scim_users": list(scim_users),
    }
