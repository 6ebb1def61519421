"""The legacy roles a CF- group grants in Cloudflare, and whether a cutover's removals have
reached Cloudflare yet (the IdP pushes them later, from its worker)."""

from . import iam
from .names import parse_virtual_group_name


def legacy_roles(client, members=None):
    """Email key -> name keys of the legacy roles each account member holds in Cloudflare (what a
    CF- group gives, and takes away when its member leaves it)."""
    names = {r["id"]: iam.name_key(r["name"]) for r in client.roles()}
    return {iam.email_key(m["email"]): {names.get(r["id"] if isinstance(r, dict) else r) for r in m.get("roles") or []}
            for m in (client.members() if members is None else members)}


def legacy_left(client, removals):
    """[(email, CF- group name)]: members a cutover took out of a CF- group to whom Cloudflare
    still gives that group's role (Authentik's push has not landed, or failed)."""
    held = legacy_roles(client)
    left = []
    for action in removals:
        parsed = parse_virtual_group_name(action["target"])
        if parsed is None:
            continue
        for email in action["request"].get("emails") or []:
            if iam.name_key(parsed.role) in held.get(iam.email_key(email), ()):
                left.append((email, action["target"]))
    return sorted(set(left))
