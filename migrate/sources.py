"""Where virtual groups are read from. Every source yields the same VirtualGroup records, so nothing
downstream knows which one ran."""

import csv
import hashlib
import io
import json
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from .errors import VgmigrateError
from .iam import email_key
from .names import looks_like_virtual_group, parse_virtual_group_name


@dataclass(frozen=True)
class VirtualGroup:
    id: str  # the source's id: a SCIM group id, or a stable id derived from the name for files
    name: str  # exactly as the source spells it
    member_emails: tuple = ()  # lower-cased, unique, sorted
    raw: dict = field(default_factory=dict, compare=False)


def _emails(values):
    return tuple(sorted({email_key(v) for v in values if v and v.strip()}))


def from_scim(scim_groups, scim_users, progress=None):
    """Cloudflare's SCIM view: groups carry no members, so membership comes from each user's `groups`.

    Only groups whose name looks like `CF-...` are kept; custom SCIM groups are not virtual groups.
    Cloudflare lists a system group for every account-scoped permission group, most of them empty:
    an empty one grants nothing, so it is not a virtual group to migrate (an IdP export cannot
    name one either, so every source yields the same records).
    """
    groups = {g["id"]: g for g in scim_groups if looks_like_virtual_group(g.get("displayName", ""))}
    members = {gid: [] for gid in groups}
    for user in scim_users:
        email = user.get("userName") or next((e.get("value") for e in user.get("emails") or []), None)
        for ref in user.get("groups") or []:
            gid = ref.get("value") if isinstance(ref, dict) else ref
            if gid in members and email:
                members[gid].append(email)
        if progress:
            progress()
    return [
        VirtualGroup(id=gid, name=g["displayName"], member_emails=_emails(members[gid]), raw=g)
        for gid, g in groups.items() if members[gid]
    ]


def from_idp(groups, users=()):
    """An IdP's `CF-` groups (as `migrate/idp/base.py` describes them) and their members' emails.

    Members come from each group's `users_obj`; when a listing left it out (Authentik's
    `include_users=false`, or an older server), its `users` pks are looked up in `users`. A user
    without an email is matched by a username that is one (Authentik's SCIM `userName`, Entra's
    user principal name). Inactive users are left out: the IdP deprovisions them in Cloudflare, so
    they hold no role there; they are kept in `raw["inactive_members"]`. Names and empty groups
    follow `from_scim`.
    """
    by_pk = {u.get("pk"): u for u in users or () if isinstance(u, dict)}
    out = []
    for group in groups:
        name = group.get("name") or ""
        if not looks_like_virtual_group(name):
            continue
        members = group.get("users_obj")
        if members is None:
            members = [by_pk[pk] for pk in group.get("users") or [] if pk in by_pk]
        active, inactive = [], []
        for user in members:
            email = _idp_email(user)
            if email:
                (active if user.get("is_active", True) is not False else inactive).append(email)
        if not active:
            continue
        raw = {k: v for k, v in group.items() if k != "users_obj"}
        if inactive:
            raw["inactive_members"] = list(_emails(inactive))
        out.append(VirtualGroup(id=str(group.get("pk")), name=name, member_emails=_emails(active), raw=raw))
    return out


def _idp_email(user):
    email = (user.get("email") or "").strip()
    if email:
        return email
    username = (user.get("username") or "").strip()
    return username if "@" in username else None


def from_file(path):
    """A CSV (`group,email` header) or JSON export from any IdP.

    JSON is either a list of {"group", "email"} rows or {"groups": [{"name", "members": [emails]}]}.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as err:
        raise VgmigrateError(f"cannot read {path}: {err.strerror}; check the --file path") from None
    except UnicodeDecodeError:
        raise VgmigrateError(f"{path} is not UTF-8 text; export it as UTF-8 CSV or JSON") from None
    pairs = _json_pairs(path, text) if path.suffix.lower() == ".json" else _csv_pairs(path, text)
    by_name = {}
    for name, email in pairs:
        if any(unicodedata.category(ch) == "Cc" and ch != "\t" for ch in name):
            raise VgmigrateError(f"{path}: group name {name[:60]!r} contains control characters (a line break or NUL); "
                                 "fix the export so each group name is on one line")
        by_name.setdefault(name, []).append(email)
    if not any(parse_virtual_group_name(name) for name in by_name):
        seen = next(iter(by_name), None)
        example = f" (the first is {seen[:60]!r})" if seen else ""
        raise VgmigrateError(
            f"{path}: none of its {len(by_name)} group name(s) is a virtual group name CF-<32 hex account id> - <Role>{example}; "
            "check that the group column holds the IdP's CF- group names"
        )
    return [
        VirtualGroup(
            id="file-" + hashlib.sha256(name.encode()).hexdigest()[:16],
            name=name,
            member_emails=_emails(emails),
            raw={"name": name, "source": path.name},
        )
        for name, emails in by_name.items()
        if looks_like_virtual_group(name)
    ]


def _csv_pairs(path, text):
    # A quoted field may hold a line break: read the text as a file, not line by line, so one is
    # never silently dropped (and the name refused below).
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h.strip().lower() for h in reader.fieldnames or []]
    if "group" not in header or "email" not in header:
        raise VgmigrateError(
            f"{path}: the CSV has no header row with `group` and `email` columns (found {', '.join(header)[:80] or 'nothing'}); "
            "export it as comma-separated `group,email`, one row per member"
        )
    reader.fieldnames = header
    for row in reader:
        line = reader.line_num
        group, email = (row.get("group") or "").strip(), (row.get("email") or "").strip()
        if not group:
            raise VgmigrateError(f"{path}, line {line}: empty group name; fix or remove the row")
        if email and "@" not in email:
            raise VgmigrateError(f"{path}, line {line}: {email!r} is not an email address; fix or remove the row")
        yield group, email


def _json_pairs(path, text):
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise VgmigrateError(f"{path}: invalid JSON at line {err.lineno}: {err.msg}; fix the file or export it again") from None
    if isinstance(data, dict) and isinstance(data.get("groups"), list):
        rows = [
            {"group": g.get("name"), "email": e}
            for g in data["groups"]
            if isinstance(g, dict)
            for e in (g.get("members") or [None])
        ]
    elif isinstance(data, list):
        rows = data
    else:
        raise VgmigrateError(
            f'{path}: not an export vgmigrate reads; give a list of {{"group", "email"}} rows or {{"groups": [{{"name", "members"}}]}}'
        )
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or not isinstance(row.get("group"), str) or not row["group"].strip():
            raise VgmigrateError(f"{path}: entry {i + 1} has no group name; give each entry a \"group\" string")
        email = row.get("email")
        if email is not None and (not isinstance(email, str) or "@" not in email):
            raise VgmigrateError(f"{path}: entry {i + 1}: {email!r} is not an email address; fix or remove the entry")
        yield row["group"].strip(), (email or "").strip()
