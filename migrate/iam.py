"""The one home of Cloudflare IAM rules vgmigrate relies on. Pure: no I/O.

Every other module asks here: which resource group covers the whole account, whether a set of
policies grants a permission group, when two policy sets are the same, the form a policy is
written back in, and when two User Group names or two emails are the same person or group.
(The sandbox keeps its own copies on purpose: it is the independent oracle the tool is tested
against.)
"""

import unicodedata
from functools import lru_cache

# A permission group whose meta.scopes has this can be bound to the whole account.
ACCOUNT_PERMISSION_SCOPE = "com.cloudflare.api.account"
# A resource group's scope key for an account is this plus the account id; its objects say what
# of the account it covers: "*" for everything, zone keys for single domains.
ACCOUNT_SCOPE_PREFIX = ACCOUNT_PERMISSION_SCOPE + "."
WHOLE_ACCOUNT = "*"
# The role a break-glass member must hold outside SCIM (the permission group's name).
SUPER_ADMIN = "Super Administrator - All Privileges"
# Cloudflare reserves User Group (and SCIM group) names that start with these letters.
RESERVED_PREFIX = "CF"


# --- resource groups ---------------------------------------------------------------------------


def account_scope_key(account_id):
    return ACCOUNT_SCOPE_PREFIX + account_id


def account_wide_scope(account_id):
    """The scope of a resource group that covers the whole account."""
    return {"key": account_scope_key(account_id), "objects": [{"key": WHOLE_ACCOUNT}]}


def scope_of(resource_group):
    """A resource group's scope as the API returns it (`scope` is one object, or a list of one)."""
    scope = (resource_group or {}).get("scope") or {}
    if isinstance(scope, list):
        scope = scope[0] if len(scope) == 1 else {}
    return scope if isinstance(scope, dict) else {}


def is_account_wide(resource_group, account_id):
    """True only for the whole account: the account's scope key with the single object "*".

    A domain-scoped resource group has the same scope key with zone objects; it is not account-wide.
    """
    scope = scope_of(resource_group)
    objects = [o.get("key") if isinstance(o, dict) else None for o in scope.get("objects") or []]
    return scope.get("key") == account_scope_key(account_id) and objects == [WHOLE_ACCOUNT]


def account_wide_ids(resource_groups, account_id):
    return {rg["id"] for rg in resource_groups if is_account_wide(rg, account_id)}


def pick_account_wide(resource_groups, account_id):
    """The account-wide resource group to reuse (see choose_account_wide). None when the account has none."""
    return choose_account_wide(rg for rg in resource_groups if is_account_wide(rg, account_id))


def choose_account_wide(account_wide):
    """Which of these account-wide resource groups a plan binds its policies to: the lowest id, so
    every run and every copy of the same scan picks the same one. None when there is none."""
    wide = list(account_wide)
    return min(wide, key=lambda rg: rg["id"]) if wide else None


# --- policies ----------------------------------------------------------------------------------


def _ids(items):
    return {item["id"] for item in items or [] if isinstance(item, dict) and "id" in item}


def grants(policies, permission_group_id, resource_group_ids):
    """Do these policies grant the permission group on one of these resource groups?

    A `deny` never grants; and a deny of the same permission group, on any scope, means the grant
    does not cover the whole account, so it does not count.
    """
    allowed = denied = False
    for policy in policies or []:
        if permission_group_id not in _ids(policy.get("permission_groups")):
            continue
        if policy.get("access", "allow") == "deny":
            denied = True
        elif policy.get("access", "allow") == "allow" and _ids(policy.get("resource_groups")) & set(resource_group_ids):
            allowed = True
    return allowed and not denied


def policy_key(policy):
    """What a policy means, without its id or the expansion the API adds on read."""
    return (
        policy.get("access", "allow"),
        tuple(sorted(_ids(policy.get("permission_groups")))),
        tuple(sorted(_ids(policy.get("resource_groups")))),
    )


def same_policies(a, b):
    """Equal policy sets, as read or as written: ids, order and expansion ignored."""
    return sorted(map(policy_key, a or [])) == sorted(map(policy_key, b or []))


def write_policy(policy):
    """A policy as read -> the form a PUT takes back, keeping its id so it is kept, not re-made,
    and its references exactly as they were (order included), so a restore is exact."""
    return {
        "id": policy.get("id"),
        "access": policy.get("access", "allow"),
        "permission_groups": [{"id": pg["id"]} for pg in policy.get("permission_groups") or []],
        "resource_groups": [{"id": rg["id"]} for rg in policy.get("resource_groups") or []],
    }


def write_policies(policies):
    return [write_policy(p) for p in policies or []]


def allow_policy(permission_group_id, resource_group_id):
    """The policy a migrated User Group carries: the role on the whole account."""
    return {"access": "allow", "permission_groups": [{"id": permission_group_id}], "resource_groups": [{"id": resource_group_id}]}


def adoption_blockers(policies, permission_group_id, name_of=str):
    """Why a User Group cannot be adopted for this permission group, or [] when it can.

    Whoever joins a group is bound by all its policies, and a deny wins over every allow. So a
    group is adoptable only when each of its policies allows the target permission group alone:
    anything else would hand the migrated members other roles, or take roles from them.
    """
    reasons = []
    for policy in policies or []:
        others = sorted(_ids(policy.get("permission_groups")) - {permission_group_id})
        if policy.get("access", "allow") == "deny":
            reasons.append("it denies " + ", ".join(sorted(map(name_of, _ids(policy.get("permission_groups"))))))
        elif others:
            reasons.append("it also grants " + ", ".join(sorted(map(name_of, others))))
    return reasons


# --- what a member holds ----------------------------------------------------------------------

# Through what a member holds a permission group: the words the effective-access view uses.
LEGACY_ROLE, OWN_POLICY, USER_GROUP, VIRTUAL_GROUP = "legacy role", "own policy", "User Group", "virtual group"


def policy_effect(policies, account_id):
    """(allowed, denied) of a set of policies: the names of the permission groups they allow on the
    whole account (an allow on an account-wide resource group), and the name keys of those they
    deny on any scope. Plain tuples, so a scan can keep one per member cheaply."""
    allowed, denied = set(), set()
    for policy in policies or []:
        names = {pg.get("name") for pg in policy.get("permission_groups") or [] if isinstance(pg, dict)} - {None, ""}
        if policy.get("access", "allow") == "deny":
            denied |= {name_key(n) for n in names}
        elif any(is_account_wide(rg, account_id) for rg in policy.get("resource_groups") or []):
            allowed |= names
    return tuple(sorted(allowed)), tuple(sorted(denied))


def member_grants(member, account_id):
    """What gives an account member access by itself, as held_access takes it: each legacy role,
    then its own policies."""
    roles = [r.get("name") for r in member.get("roles") or [] if isinstance(r, dict) and r.get("name")]
    return (*((LEGACY_ROLE, role, (role,), ()) for role in sorted(roles)), (OWN_POLICY, "", *policy_effect(member.get("policies"), account_id)))


def group_grant(name, policies, account_id):
    """What a User Group gives each of its members, as held_access takes it."""
    return (USER_GROUP, name, *policy_effect(policies, account_id))


def held_access(grants):
    """What a member holds on the whole account, as Cloudflare counts it: {name key: (name,
    [(through, via), ...])}.

    grants: (through, via, allowed names, denied name keys) for everything that gives the member
    access: member_grants, and a group_grant for each User Group it is in. Access is the union of
    them all (a legacy role, an own policy, a User Group's allow on an account-wide resource group),
    and a deny of a permission group from any of them takes it back, whatever its scope.
    """
    denied = {key for grant in grants for key in grant[3]}
    held = {}
    for through, via, allowed, _ in grants:
        for name in allowed:
            key = name_key(name)
            if key and key not in denied:
                held.setdefault(key, (name, []))[1].append((through, via))
    return held


def held_permission_group_names(member, account_id, groups=()):
    """Name keys of what an account member holds on the whole account: its legacy roles, its own
    policies and `groups` ((name, policies) of each User Group it is in), as held_access counts them."""
    return set(held_access([*member_grants(member, account_id), *(group_grant(n, p, account_id) for n, p in groups)]))


# --- identity of names and people --------------------------------------------------------------


def name_key(text):
    """When two names are the same name: case, every kind of whitespace and invisible format
    characters ignored. Used for User Group names, role names and permission group names alike,
    so a conflict is never missed because of case."""
    if text is None:
        return ""
    return _name_key(str(text))


@lru_cache(maxsize=16384)  # a scan asks for the same few names on every member
def _name_key(text):
    visible = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    return " ".join(visible.split()).casefold()


def email_key(email):
    """When two emails are the same person: Cloudflare and IdPs may store either case."""
    return (email or "").strip().lower()


def is_reserved_name(name):
    return (name or "").strip().upper().startswith(RESERVED_PREFIX)
