"""The one home of step kinds: every kind of plan step, what it sends, how to tell it already
happened, how to undo it, how it is built and how it is described.

    base   the kind protocol, the registry (`kind_of`), `StepFailed`, and the questions other
           modules ask of a kind (does it make a group, whom does it add, what does it grant)
    api    API mode: resource group, User Group, adoption, members
    idp    IdP mode: the group made in the IdP and pushed over SCIM, its policy, the cutover's
           removals and deletes
    setup  `idp check --fix`: the IdP's SCIM provider and application, links to CF- groups
    okta   `idp check --fix` for Okta: Group Push mappings linking CF- groups to Cloudflare's

No module outside this package spells a kind's name: it asks the kind, or names its class.
"""

from .base import (  # noqa: F401
    KINDS, SHARED_STEPS, StepFailed, StepKind, added_members, describe, in_cloudflare_audit_log, inverse_in_words, is_kind,
    kind_of, kinds_where, make_step, plan_group_of,
)
from .api import AddMembers, AdoptUserGroup, CreateResourceGroup, CreateUserGroup  # noqa: F401
from .idp import (  # noqa: F401
    AttachIdpPolicy, CreateIdpGroup, DeleteIdpGroup, RemoveIdpMembers, ScopeIdpGroups, SyncIdpGroup, push_again,
    refuse_cleanup, removals_of,
)
from .setup import (  # noqa: F401
    AssignIdpGroup, AttachBackchannelProvider, CreateApplication, CreateScimProvider, LinkCfGroup, secret_free,
)
from .okta import LinkPushMapping  # noqa: F401


def creates_policy(steps):
    """Does any of these plan steps give a User Group the migrated policy (and so need the resource group)?"""
    return any(kind_of(s).creates_policy for s in steps)


def summary_parts(steps, idp_name=None):
    """A plan's steps counted in words, for its one-line summary (idp_name: of an idp-mode plan)."""
    kinds = {}
    for s in steps:
        kinds[s["kind"]] = kinds.get(s["kind"], 0) + 1
    members = sum(len(added_members(s)) for s in steps)
    if idp_name:
        parts = [f"{kinds.get(CreateIdpGroup.kind, 0)} {idp_name} groups to create and push", f"{members} members copied"]
    else:
        parts = [f"{kinds.get(CreateUserGroup.kind, 0)} to create", f"{kinds.get(AdoptUserGroup.kind, 0)} to adopt", f"{members} member additions"]
    if kinds.get(CreateResourceGroup.kind):
        parts.append("1 resource group to create")
    return parts
