"""Resolve a virtual group's role name to one account-scoped permission group. Never guesses.

Order, first hit wins:
  1. the user's mapping file, when it has an entry for the role. An explicit mapping overrides
     even an exact name match: the admin said so, and method "mapping" makes it visible. A
     mapping entry that points nowhere usable is unresolved; it never falls back to automatic.
  2. exact name, 3. case/whitespace-normalised name, 4. RENAMES (old name -> current name,
     then exact/normalised again).
Only account-scoped, non-deprecated groups are ever chosen: virtual groups only ever granted
account-level roles, and a deprecated group is on its way out. A name that matches only such
groups is unresolved with a message saying why. Two or more matches at one step are ambiguous.
Pure functions, except load_mapping which reads one file.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from migrate.errors import VgmigrateError
from migrate.iam import ACCOUNT_PERMISSION_SCOPE as ACCOUNT_SCOPE
from migrate.iam import SUPER_ADMIN, name_key
from migrate.names import is_hex_id


# Old role name -> current permission group name (SEMANTICS.md 2.2). Drifts that differ only in
# case or whitespace ("PAge Shield Read", "Trust And Safety", "Bot Management (Account-Wide)",
# "Email Security ...") are caught by the normalised step and need no entry here.
# Deliberately absent: "Super Administrator" (Cloudflare silently granted only Minimal Account
# Access for it) and "HTTP Applications" / "HTTP Applications Read" (retired, no successor).
RENAMES: dict[str, str] = {
    "Super Administrator (All Privileges)": SUPER_ADMIN,
    "Bot Management": "Bot Management (Account-wide)",
    "Network Services (Magic)": "Network Services Write (Magic)",
    "Network Services (Magic, Read-Only)": "Network Services Read (Magic)",
    "Hyperdrive Readonly": "Hyperdrive Read",
    "Vectorize Readonly": "Vectorize Read only",
    "Zaraz Readonly": "Zaraz Read",
    "Cloudflare Workers Admin": "Workers Platform Admin",
    "Workers Admin": "Workers Platform Admin",
}

# Normalised role name -> why it stays unresolved; appended to the unresolved message.
_TRAPS = {
    "super administrator": (
        'Cloudflare gave this virtual group only Minimal Account Access (the role is named '
        f'"{SUPER_ADMIN}"): map it to that unless these members should really become super administrators'
    ),
    "http applications": "Cloudflare retired this role and it has no successor",
    "http applications read": "Cloudflare retired this role and it has no successor",
}

_TRUE_WORDS = {"true", "1", "yes", "y", "on"}
_FALSE_WORDS = {"false", "0", "no", "n", "off", ""}
_MAPPING_HINT = "add it to a mapping file (--mapping)"


@dataclass(frozen=True)
class Resolution:
    role: str
    status: str  # "resolved" | "unresolved" | "ambiguous"
    method: str | None  # "exact" | "normalised" | "rename" | "mapping" | None
    permission_group: dict | None  # the chosen group, as listed by the API
    candidates: tuple[dict, ...]  # the tied groups when ambiguous
    message: str  # one line a human can act on

    @property
    def resolved(self) -> bool:
        return self.status == "resolved"


def _scopes(pg) -> list[str]:
    scopes = ((pg or {}).get("meta") or {}).get("scopes")
    if isinstance(scopes, str):
        return [scopes.strip()]
    if isinstance(scopes, (list, tuple)):
        return [s.strip() for s in scopes if isinstance(s, str)]
    return []


def is_account_scoped(pg) -> bool:
    # A list that includes the account scope can still be bound to the account-wide resource group.
    return ACCOUNT_SCOPE in _scopes(pg)


def is_deprecated(pg) -> bool:
    flag = ((pg or {}).get("meta") or {}).get("deprecated")
    if isinstance(flag, str):
        word = name_key(flag)
        # An unknown word (a date, "soon") is treated as deprecated: never choose on a doubt.
        return word in _TRUE_WORDS or word not in _FALSE_WORDS
    return bool(flag)


def _eligible(pg) -> bool:
    return is_account_scoped(pg) and not is_deprecated(pg)


def _unique(groups) -> list[dict]:
    """Drop repeats of the same id (overlapping pages) and anything that is not a group."""
    seen, out = set(), []
    for pg in groups or ():
        if not isinstance(pg, dict):
            continue
        key = str(pg.get("id", "")).lower() or id(pg)
        if key not in seen:
            seen.add(key)
            out.append(pg)
    return out


def _by_name(name, groups):
    """(how, eligible matches, refused matches): exact name first, then normalised."""
    exact = [pg for pg in groups if pg.get("name") == name]
    chosen = [pg for pg in exact if _eligible(pg)]
    if chosen:
        return "exact", chosen, []
    key = name_key(name)
    loose = [pg for pg in groups if name_key(pg.get("name")) == key]
    chosen = [pg for pg in loose if _eligible(pg)]
    if chosen:
        return "normalised", chosen, []
    return None, [], loose


def _describe(pg) -> str:
    return f'"{pg.get("name")}" ({pg.get("id")})'


def _why_refused(pg) -> str:
    if not is_account_scoped(pg):
        scopes = ", ".join(_scopes(pg)) or "none"
        return f"{_describe(pg)} is not account-scoped (scopes: {scopes})"
    return f"{_describe(pg)} is deprecated"


def _found(role, method, matches, via="") -> Resolution:
    """Resolved for one match, ambiguous for several; `via` names the looked-up name when it differs."""
    if len(matches) > 1:
        ids = ", ".join(_describe(pg) for pg in matches)
        return Resolution(
            role, "ambiguous", None, None, tuple(matches),
            f'{len(matches)} account-scoped permission groups match "{role}"{via}: {ids}; '
            "pick one by id in a mapping file (--mapping)",
        )
    pg = matches[0]
    how = {
        "exact": "by exact name",
        "normalised": "ignoring case and whitespace",
        "rename": "via its known rename",
        "mapping": "by the mapping file",
    }[method]
    return Resolution(role, "resolved", method, pg, (), f'"{role}" resolved {how} to {_describe(pg)}')


def _unresolved(role, message) -> Resolution:
    return Resolution(role, "unresolved", None, None, (), message)


def _mapping_targets(role, mapping) -> set[str]:
    """The mapping's value(s) for this role: an exact key first, else every normalised key match."""
    if not mapping:
        return set()
    if role in mapping:
        return {str(mapping[role]).strip()}
    key = name_key(role)
    return {str(value).strip() for name, value in mapping.items() if name_key(name) == key}


def _resolve_mapped(role, target, groups) -> Resolution:
    via = f' (mapped to "{target}")'
    if is_hex_id(target):
        matches = [pg for pg in groups if str(pg.get("id", "")).lower() == target.lower()]
        if not matches:
            return _unresolved(
                role,
                f'the mapping sends "{role}" to id {target}, which is not a permission group of this account '
                "(legacy role ids from GET /roles are not permission group ids); fix the mapping",
            )
        chosen = [pg for pg in matches if _eligible(pg)]
        refused = matches
    else:
        _, chosen, refused = _by_name(target, groups)
        if not chosen and not refused:
            return _unresolved(
                role,
                f'the mapping sends "{role}" to "{target}", but no permission group has that name; '
                "fix the mapping (a permission group name or its 32-hex id)",
            )
    if chosen:
        return _found(role, "mapping", chosen, via)
    reasons = "; ".join(_why_refused(pg) for pg in refused)
    return _unresolved(
        role,
        f'the mapping sends "{role}" to a group vgmigrate will not use: {reasons}; '
        "map it to an account-scoped, non-deprecated permission group",
    )


def resolve_role(role, permission_groups, mapping=None) -> Resolution:
    """Resolve one role name against GET /iam/permission_groups (see the module docstring)."""
    role = " ".join(str(role or "").split())
    if not role:
        return _unresolved(role, "the virtual group has an empty role name; rename the group in the IdP")
    groups = _unique(permission_groups)

    targets = _mapping_targets(role, mapping)
    if len(targets) > 1:
        return _unresolved(
            role, f'the mapping has conflicting entries for "{role}" ({", ".join(sorted(targets))}); keep one'
        )
    if targets:
        return _resolve_mapped(role, targets.pop(), groups)

    how, chosen, refused = _by_name(role, groups)
    if chosen:
        return _found(role, how, chosen)

    new_name = next((new for old, new in RENAMES.items() if name_key(old) == name_key(role)), None)
    if new_name is not None:
        _, chosen, refused_new = _by_name(new_name, groups)
        if chosen:
            return _found(role, "rename", chosen, f' (now "{new_name}")')
        refused = refused + refused_new

    named = f'"{role}"' + (f' or its current name "{new_name}"' if new_name else "")
    if refused:
        reasons = "; ".join(_why_refused(pg) for pg in refused)
        message = (
            f"no usable permission group for {named}: {reasons}; virtual groups granted only "
            f"account-level roles, so {_MAPPING_HINT} pointing at an account-scoped one"
        )
    else:
        message = f"no account-scoped permission group named {named}; {_MAPPING_HINT}"
    trap = _TRAPS.get(name_key(role))
    if trap:
        message += f". Note: {trap}"
    return _unresolved(role, message)


def role_resolver(permission_groups, mapping=None):
    """resolve_role(role, permission_groups, mapping), with the same answers, for many roles.

    resolve_role dedups the groups, then compares the role by name with every one of them (exact,
    then ignoring case and whitespace; then the same for the role's known rename) unless the
    mapping names the role. Handing it only the groups whose normalised name is the role's or its
    rename's, in listed order, changes no answer and saves a pass over all groups per role.
    """
    groups = _unique(permission_groups)
    positions_by_name = {}
    for position, pg in enumerate(groups):
        positions_by_name.setdefault(name_key(pg.get("name")), []).append(position)
    renamed = {}
    for old, new in RENAMES.items():
        renamed.setdefault(name_key(old), name_key(new))
    mapped = {name_key(name) for name in mapping or ()}

    def resolve(role):
        key = name_key(role)
        if key in mapped:
            return resolve_role(role, groups, mapping)
        positions = sorted({*positions_by_name.get(key, ()), *positions_by_name.get(renamed.get(key), ())})
        return resolve_role(role, [groups[p] for p in positions], mapping)

    return resolve


def _line_of(text: str, key: str) -> int | None:
    """Best-effort line number of a [roles] key, for error messages."""
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.lstrip()
        for spelled in (f'"{key}"', f"'{key}'", key):
            if stripped.startswith(spelled) and stripped[len(spelled):].lstrip().startswith(("=", ".")):
                return number
    return None


def load_mapping(path) -> dict[str, str]:
    """Read a TOML mapping file: a [roles] table of role name -> permission group name or 32-hex id."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise VgmigrateError(f"cannot read mapping file {path}: {err.strerror or err}; check the --mapping path") from err
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise VgmigrateError(f"mapping file {path} is not UTF-8 text (byte {err.start}); save it as UTF-8") from err
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise VgmigrateError(
            f"mapping file {path} is not valid TOML: {err}; fix that line "
            '(entries look like "Old Role" = "Permission Group Name", both quoted)'
        ) from err

    unknown = sorted(set(data) - {"roles"})
    if unknown:
        raise VgmigrateError(
            f"mapping file {path}: unexpected top-level key(s) {', '.join(unknown)}; put every entry under [roles]"
        )
    roles = data.get("roles")
    if not isinstance(roles, dict):
        raise VgmigrateError(
            f'mapping file {path} has no [roles] table; add one with lines like "Old Role" = "Permission Group Name"'
        )

    mapping: dict[str, str] = {}
    seen: dict[str, str] = {}  # normalised key -> key as written
    for key, value in roles.items():
        line = _line_of(text, key)
        where = f"{path}" + (f" line {line}" if line else "") + f' [roles] "{key}"'
        if isinstance(value, dict):
            raise VgmigrateError(
                f"mapping file {where} is a table, not a string; quote role names that contain dots "
                'or brackets, e.g. "A.B" = "Permission Group Name"'
            )
        if not isinstance(value, str):
            raise VgmigrateError(
                f"mapping file {where} must be a string, not {type(value).__name__}; "
                "quote a permission group name or 32-hex id"
            )
        if not name_key(key):
            raise VgmigrateError(f"mapping file {where}: the role name is empty; write the role as it appears after 'CF-<id> - '")
        if not value.strip():
            raise VgmigrateError(f"mapping file {where} is empty; give a permission group name or 32-hex id")
        norm = name_key(key)
        if norm in seen and mapping[seen[norm]] != value.strip():
            raise VgmigrateError(
                f'mapping file {where} conflicts with "{seen[norm]}" (same role ignoring case and spaces); keep one'
            )
        seen.setdefault(norm, key)
        mapping[key] = value.strip()
    return mapping
