"""The legacy roles a CF- group grants in Cloudflare, and whether a cutover's removals have
reached Cloudflare yet (the IdP pushes them later, from its worker)."""

from . import iam
from .cloudflare import run_parallel
from .errors import CloudflareError
from .names import parse_virtual_group_name

# Up to this many members are read one by one while waiting; more, and the member list is read
# whole (50 a page). A wait polls: on a 100,000-member account a whole list is 2,000 calls a poll.
FEW_MEMBERS = 50


def legacy_roles(client, members=None, member_ids=None):
    """Email key -> name keys of the legacy roles each account member holds in Cloudflare (what a
    CF- group gives, and takes away when its member leaves it). member_ids: only these members
    are needed (read one by one when they are few)."""
    names = {r["id"]: iam.name_key(r["name"]) for r in client.roles()}
    if members is None:
        few = member_ids is not None and len(member_ids) <= FEW_MEMBERS
        members = [m for m in run_parallel(lambda i: _member_or_none(client, i), sorted(member_ids), client.parallel) if m] if few \
            else client.members()
    return {iam.email_key(m["email"]): {names.get(r["id"] if isinstance(r, dict) else r) for r in m.get("roles") or []}
            for m in members}


def _member_or_none(client, member_id):
    try:
        return client.member(member_id)
    except CloudflareError as err:
        if err.status == 404:  # no longer an account member: holds nothing
            return None
        raise


def member_ids_of(removals):
    """The account member ids the removals took out of CF- groups; None when a removal journaled
    before they were recorded does not say."""
    if any("members" not in a["request"] for a in removals):
        return None
    return {m for a in removals for m in a["request"]["members"]}


def legacy_left(client, removals):
    """[(email, CF- group name)]: members a cutover took out of a CF- group to whom Cloudflare
    still gives that group's role (Authentik's push has not landed, or failed)."""
    held = legacy_roles(client, member_ids=member_ids_of(removals))
    left = []
    for action in removals:
        parsed = parse_virtual_group_name(action["target"])
        if parsed is None:
            continue
        for email in action["request"].get("emails") or []:
            if iam.name_key(parsed.role) in held.get(iam.email_key(email), ()):
                left.append((email, action["target"]))
    return sorted(set(left))
