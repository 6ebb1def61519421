"""The embedded Okta Management API emulator (the IdP side of `--mode idp` with `--idp okta`).

    from migrate.sandbox import Sandbox
    from migrate.sandbox.okta import OktaSandbox

    with Sandbox(seed=demo_seed(), rate_limit=None) as cf, OktaSandbox(cloudflare=cf) as okta:
        okta.base_url, okta.token, okta.app_id     # OKTA_ORG_URL, OKTA_API_TOKEN (SSWS), the app
        okta.inject("POST", r"/group-push/mappings$", "5xx")  # "5xx" | "429" | "lose" | "timeout"
        okta.state.groups; okta.state.logs; okta.calls; okta.settle()

Options: `access_tokens` ({token: scopes}: OAuth access tokens, `Authorization: Bearer`, refused
with 403 E0000006 and a `WWW-Authenticate` naming the missing scopes), `provisioning` (False: the
app's provisioning connection is disabled), `group_push` (False: no GROUP_PUSH feature), `mapped`
(False: the CF- groups have no push mapping), `imported` (with mapped=False: whether their
Cloudflare groups were imported into Okta as app groups, which a mapping can link to), `assigned` (False: they are not assigned to the app),
`scim_token` (another token makes every push fail with Cloudflare's 401), `rate_limit`
((requests, seconds) per endpoint family, with `X-Rate-Limit-*` headers; None: off), `token`,
`host`, `port`, `latency_ms`, `push_delay`, `retry_backoff`, `max_retries`.

Module map: `server` (HTTP, auth, rate limits, faults), `seed` (the org mirrored from Cloudflare),
`routes` (endpoints and their scopes), `state` (objects and their rendering in Okta's shapes),
`push` (the SCIM client that provisions users and pushes groups into Cloudflare).

The seed, from the Cloudflare sandbox at construction: an admin (the API token's user); one ACTIVE
user per Cloudflare SCIM user (login = email = userName), assigned to the app "Cloudflare
Dashboard" and PROVISIONED as that SCIM user (app user `externalId` = its SCIM id); one group per
non-empty system (virtual) group and per SCIM-managed User Group, same name and members, assigned
to the app, with an ACTIVE push mapping linked to that Cloudflare group (the way they got there);
users in no such group are assigned to the app directly; "Engineering" (an Okta-only user and one
provisioned user) and "Contractors" (empty), neither assigned nor pushed.

From Okta's documentation, as the emulator follows it (none of it could be run against a real org here):
- Group Push is asynchronous: the API answers, then a worker pushes (after a random 0.02 to
  0.25 s, in any order, a transient SCIM failure retried with backoff; a group push whose retries
  are used up leaves its mapping in ERROR).
- Creating a mapping with `targetGroupName` makes Okta POST the group to Cloudflare; a name
  Cloudflare refuses (taken: 409; a `CF` prefix: 400) sets the mapping to ERROR with an
  `errorSummary`, and a FAILURE event in the System Log. Linking (`targetGroupId`) needs the target
  imported into Okta as an app group, which Cloudflare's set-up ("Import Groups" off) never does.
- Only members assigned to the app and provisioned are pushed; a user assigned to the app (directly
  or through an assigned group) is provisioned (matched by `userName eq`, else created); a user no
  longer assigned is deactivated in Cloudflare (`active: false`), which ends their membership.
- Removing a member from a pushed group removes it in Cloudflare (a PATCH remove); each membership
  update is preceded by a PATCH restating the group's name (`replace` {id, displayName}), which
  Cloudflare takes for a CF- system group as long as the name is the one it has.
- A mapping is deleted only when INACTIVE; `deleteTargetGroup=true` deletes the Cloudflare group.
- Setting a mapping ACTIVE pushes the group again, then its membership.

Where Okta documents nothing, the emulator chooses, and says so here:
- Okta's SCIM group create sends `displayName` and an empty `members` (its SCIM 2.0 reference), then
  adds the members with a PATCH; it sends no `externalId`, so the pushed group carries nothing that
  names its Okta group.
- The System Log event types: `application.provision.group_push.pushed` (the group's create),
  `...push_memberships` (a membership push, one event per push, after it finished), `...updated`
  (a status change), `...delete_appgroup`, `application.provision.user.push` and
  `...user.deactivate`. A failed push is the same type with outcome FAILURE.
- Deleting a group in Okta drops its app assignments and push mappings; its pushed group stays in
  Cloudflare. Deleting an app group (a mapping's target) is refused (403).
- Rate limits: one sliding window per endpoint family (groups, apps, logs, users), default 600
  requests per 60 s; a 429 (E0000047) carries `X-Rate-Limit-Reset` (epoch seconds) and no Retry-After.
- An API token (SSWS) acts as a super admin; an access token has exactly its listed scopes. The
  scheme may be followed by the token with or without a space: the official Python SDK (3.4)
  sends `SSWS<token>`, and its users' calls work.
"""

from .server import OktaSandbox

__all__ = ["OktaSandbox"]
