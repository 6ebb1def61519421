"""What the engine needs of an IdP that pushes its groups to Cloudflare over SCIM.

Planner, executor, cutover and rollback reach the IdP only through `idp_of(client)` and only
with these calls, so each IdP is one adapter (`authentik.py`, `okta.py`, `entra.py`) and no change
to them. The words are the engine's, not any IdP's:

- a **group** is a dict: "pk" (the IdP's id, a string), "name", "users" (member ids),
  "attributes" ({"vgmigrate": marker} on a group vgmigrate made, else {}), and, when asked,
  "users_obj" ([{"pk", "email", "username"}]);
- the **provider** is the IdP's object that pushes to Cloudflare (Authentik's SCIM provider, Okta's
  Cloudflare app, Entra's enterprise application), named by its "pk";
- the **scope** is the set of groups the provider pushes (Authentik's group_filters, the groups
  assigned to the Okta app or to the Entra application);
- a **push** asks the IdP to send one group to Cloudflare now; the IdP does it later, from its own
  worker, so the engine then watches Cloudflare.

A write the adapter makes of several calls (Okta adds members one by one) must be safe to send
again: it reads, then sends only what is missing, and takes "already so" (a 404 on a delete) as done.
"""

from __future__ import annotations

from typing import Protocol

from ..errors import UsageProblem

IDPS = ("authentik", "okta", "entra")  # the adapters, as `--idp` and `scan --source` name them


class IdP(Protocol):
    name: str  # as users call it, for messages: "Authentik", "Okta", "Entra ID"
    source: str  # its `scan --source` and `--idp` word: "authentik", "okta", "entra"
    sync_timeout: float  # how long a push from the IdP's worker may take to reach Cloudflare
    last_status: int | None  # of the last answer, for the journal
    last_ray: str | None

    def me(self) -> dict: ...  # a cheap call that proves the token, else a one-line error

    # List its CF- groups with their members.
    def cf_groups(self, include_users=True) -> list: ...
    def group(self, pk, include_users=True) -> dict | None: ...
    def group_by_name(self, name, include_users=True) -> dict | None: ...

    # Create a group with members; set its members to exactly these; delete it.
    def create_group(self, name, users=(), attributes=None) -> dict: ...
    def set_members(self, pk, users) -> None: ...
    def delete_group(self, pk) -> None: ...
    def groups_path(self) -> str: ...  # for the journal: where a create is sent
    def group_path(self, pk) -> str: ...

    # What a re-created group (rollback of `cutover --delete-groups`) needs beyond name, attributes
    # and members ({} for most IdPs), and the update that gives it back.
    def kept_fields(self, group) -> dict: ...
    def fields_to_restore(self, pk, kept) -> dict: ...
    def update_group(self, pk, **fields) -> dict: ...

    # The push scope, without making the IdP delete in Cloudflare what it leaves out.
    def scope_of(self, provider) -> list: ...
    def set_scope(self, provider, groups) -> None: ...
    def scope_path(self, provider) -> str: ...
    def cleanup_victims(self, provider, groups, leaving=()) -> list: ...  # names the IdP would delete

    # Push a group now, and what Cloudflare group it became. An IdP that keeps a link to it
    # (`links_groups`) says which; for one that does not, the engine finds the Cloudflare group of
    # that name whose externalId is the IdP group's pk, or of that name alone when the IdP's push
    # sends no externalId (`sends_external_id` False: Okta). Such an IdP's `pushed_id` is its own
    # handle on the pushed group, which only its `link` reads.
    links_groups: bool
    sends_external_id: bool
    def push(self, provider, group_pk) -> list: ...  # problems the IdP reported at once (strings)
    def push_problems(self, provider, group_pk) -> list: ...  # why a push failed later, once the IdP says so
    def push_path(self, provider) -> str: ...
    def pushed_id(self, provider, group_pk) -> str | None: ...  # the Cloudflare group id, once known
    def link(self, provider, group_pk, scim_id) -> bool: ...  # link to an existing Cloudflare group; True if it made a link
    def link_path(self, provider) -> str: ...
    def unpush_calls(self, provider, group_pk) -> list: ...  # [(method, path, call, words)] rollback sends first

    # Follow the pushes of a group's membership (push_again waits for one to finish).
    def group_pushes(self, provider, group_pk) -> set: ...
    def group_pushes_done(self, provider, group_pk, before) -> bool: ...

    # What planning and apply read: the facts a plan is made from, and what moved since.
    def plan_facts(self, cloudflare) -> dict: ...
    def stale_reasons(self, plan, ours) -> list: ...


class AdapterDefaults:
    """What an IdP adapter may inherit: the answers of an IdP that keeps nothing on a group beyond
    its name, attributes and members, never deletes out-of-scope groups in Cloudflare, and cannot
    be told to link a group to an existing Cloudflare group."""

    links_groups = True
    sends_external_id = True

    # The adapter keeps `http` (an HttpClient) and `_local` (a threading.local), where its transport
    # records each answer's status and, where the IdP sends one, its request id.
    def close(self):
        self.http.close()

    @property
    def last_status(self):
        """HTTP status of the last answer on this thread (for the journal)."""
        return getattr(self._local, "status", None)

    @property
    def last_ray(self):
        """The IdP's id of the last request on this thread (Okta's X-Okta-Request-Id, Graph's request-id)."""
        return getattr(self._local, "request_id", None)

    def push_problems(self, provider, group_pk):
        return []  # the IdP reports nothing after the push: the wait for Cloudflare tells

    def kept_fields(self, group):
        return {}

    def fields_to_restore(self, pk, kept):
        return {}

    def update_group(self, pk, **fields):
        raise NotImplementedError(f"{self.name} groups have no fields beyond name, attributes and members")

    def cleanup_victims(self, provider, groups, leaving=()):
        return []

    def link(self, provider, group_pk, scim_id):
        return False

    def link_path(self, provider):
        return self.scope_path(provider)

    def unpush_calls(self, provider, group_pk):
        return []


def idp_of(client) -> IdP:
    """The IdP a run that writes to it reaches through the Cloudflare client, or a one-line error
    saying how to give it one."""
    if getattr(client, "idp", None) is None:
        raise UsageProblem("this run changes the IdP: set AUTHENTIK_URL and AUTHENTIK_TOKEN, OKTA_ORG_URL and OKTA_API_TOKEN, "
                           "or the ENTRA_ variables (and --idp if more than one is set), then run again")
    return client.idp


def idp_name(summary):
    """The IdP a plan's "idp" summary is for, as users call it (plans made before Okta and Entra ID
    were there are Authentik's)."""
    return (summary or {}).get("name") or "Authentik"


def plan_idp_source(plan):
    """The `--idp` word of the IdP an idp-mode plan was made with."""
    return ((plan or {}).get("idp") or {}).get("source") or "authentik"
