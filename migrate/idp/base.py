"""What the engine needs of an IdP that pushes its groups to Cloudflare over SCIM.

Planner, executor, cutover and rollback reach the IdP only through `idp_of(client)` and only
with these calls, so a second IdP is a second adapter and no change to them. Groups are dicts
with "pk", "name", "users" (member ids) and, when asked, "users_obj" (with emails); "provider"
is the IdP's object that pushes to Cloudflare.
"""

from __future__ import annotations

from typing import Protocol

from ..errors import UsageProblem


class IdP(Protocol):
    sync_timeout: float  # how long a push from the IdP's worker may take to reach Cloudflare
    last_status: int | None  # of the last answer, for the journal
    last_ray: str | None

    # List its CF- groups with their members.
    def cf_groups(self, include_users=True) -> list: ...
    def group(self, uuid, include_users=True) -> dict | None: ...
    def group_by_name(self, name, include_users=True) -> dict | None: ...

    # Create a group with members; take members out (or put them back); delete it.
    def create_group(self, name, users=(), attributes=None) -> dict: ...
    def update_group(self, uuid, **fields) -> dict: ...
    def delete_group(self, uuid) -> None: ...

    # Put groups in the push scope, without making the IdP delete what it leaves out.
    def scim_provider(self, pk) -> dict: ...
    def update_scim_provider(self, pk, **fields) -> dict: ...
    def cleanup_victims(self, provider_pk, group_filters, leaving=()) -> list: ...

    # Push a group now, and follow the pushes of its membership.
    def sync_object(self, pk, group_uuid) -> list: ...
    def group_pushes(self, provider_pk, group_uuid) -> set: ...
    def group_pushes_done(self, provider_pk, group_uuid, before) -> bool: ...

    # Find the Cloudflare group a group is linked to (and link it again after a re-create).
    def scim_group_links(self, provider_pk, group_uuid=None) -> list: ...
    def create_scim_group_link(self, provider_pk, group_uuid, scim_id) -> dict: ...

    # What planning and apply read: the facts a plan is made from, and what moved since.
    def plan_facts(self, cloudflare) -> dict: ...
    def stale_reasons(self, plan, ours) -> list: ...


def idp_of(client) -> IdP:
    """The IdP a run that writes to it reaches through the Cloudflare client, or a one-line error
    saying how to give it one."""
    if getattr(client, "idp", None) is None:
        raise UsageProblem("this run changes Authentik: set AUTHENTIK_URL and AUTHENTIK_TOKEN, then run again")
    return client.idp
