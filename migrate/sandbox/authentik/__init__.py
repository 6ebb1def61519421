"""The embedded authentik API emulator (the IdP side of the `--mode idp` migration).

    from migrate.sandbox import Sandbox
    from migrate.sandbox.authentik import AuthentikSandbox

    with Sandbox(seed=demo_seed(), rate_limit=None) as cf, AuthentikSandbox(cloudflare=cf) as ak:
        ak.base_url, ak.token, ak.provider_id       # base_url ends in /api/v3
        ak.inject("POST", r"/sync/object/$", "5xx")  # "5xx" | "429" | "lose" | "timeout"
        ak.state.groups; ak.state.tasks; ak.calls

Options: `version` ("2026.5.6"; drives the shapes below), `attached` (the provider is the
backchannel provider of the `cloudflare-dashboard` application), `scope` ("listed": the provider's
group_filters are the seeded CF- groups; "all": empty group_filters = every group), `provider`
(False: no SCIM provider at all), `provider_token` (default: the Cloudflare sandbox's token; another
one makes every push fail with Cloudflare's 403), `token`, `host`, `port`, `latency_ms`.

Module map: `server` (HTTP, auth, faults, the seed), `routes` (endpoints), `state` (objects and
their rendering per version), `sync` (the SCIM client that pushes into Cloudflare).

Version switches: `autocomplete`, the tasks API and the new SyncStatus from 2025.8 (before: sync
status `{is_running, tasks: [SystemTask]}` and no /tasks/*); `parents`/`parents_obj` from 2025.12
(before: `parent`/`parent_name`); `group_filters` and discovery from 2026.2 (before: `filter_group`,
which the sandbox stores but does not apply, and every group in scope); AKQL `search` from 2026.5;
`token` write-only, `discovery_enabled` and compatibility mode `gitlab` from 2026.8. Versions before
2024.8 (no sync/object, the old `sync_status/` path) are not modelled.

The seed, from the Cloudflare sandbox at construction: akadmin (the token's user, superuser, in
"authentik Admins"); one user per Cloudflare SCIM user (username = email = userName) with a
`scim_users` link; one group per non-empty system (virtual) group, same name and members, linked
to the system group id; one group per SCIM-managed User Group, linked to its id; "Engineering" (an
IdP-only user plus one Cloudflare user) and "Contractors" (empty); provider "Cloudflare SCIM";
application "Cloudflare Dashboard" (`cloudflare-dashboard`); when attached with the sandbox's own token, one
successful full sync in its task history (the account has been provisioned by it).

Checked against a real 2025.12.4 (`tests/real_authentik/test_differential.py`: create with
members, add, remove, add to and remove from a CF- group, rename, delete, full sync, single-object
sync, a 409): the same distinct SCIM requests (method, path, body, status) and the same end state
in Cloudflare. How OFTEN each is sent differs, by design: a failed push is retried on a compressed
clock here (`retry_backoff` 0.4 s, doubling) where authentik waits 15 s, doubling, up to 5 times
(~8 minutes); the member PATCH of a new group is sent once here, once or twice there (below);
and there a deleted group's `DELETE /Groups/{id}` was once sent twice (the second answered 404).
Also seen there, and followed here: a 409 on a group fails its task, which is retried (no
adoption before 2026.2), and a full-sync page stops at such a group, the rest of the page waiting
for the retry; a full sync re-sends every user (`PUT`, the stored attributes being the POST
answer) and a path-less `PATCH replace` to each `CF-` group, which Cloudflare refuses (400).

Where authentik documents nothing, the sandbox chooses, and says so here:
- Application policy bindings are not modelled; instead a hidden set of unbound users is never in
  the provider's user scope: akadmin and the IdP-only user. Every other user is, on every version.
- Seeded links (users and groups) store the payload the sandbox would send, as if the last sync
  had written it, so a full sync of the unchanged seed writes nothing (it only reads group
  members). Renaming a CF- group (or any change to its payload) sends the path-less PATCH replace,
  which Cloudflare refuses for a system group (read-only but for members): a task warning, the
  local rename stays. add_user/remove_user on a CF- group send membership ops only, which work
  and grant/revoke the role. Cloudflare's system groups list no `members`, so reconciling them
  adds and removes nothing; only the membership signals reach them.
- After a successful update the stored link attributes are not refreshed (as upstream): a renamed
  group is PATCHed again on each full sync, harmlessly.
- A group created with `users` is written once by its direct sync (POST, then one PATCH adding the
  linked members); the m2m add that authentik also queues is not sent. A real 2025.12.4 sends that
  second, identical PATCH when its m2m task runs after the direct one, and not when it runs first
  (no link yet): seen both ways in the differential tests.
- `PATCH`/`PUT` of a group runs the direct sync (full write) first, then the membership ops of the
  users removed and added. A membership change of a group with no link yet logs a task warning
  (authentik logs it to the worker log only).
- Pushes run synchronously inside the request that triggers them, one at a time; a transient
  failure (5xx, 429, connection) is a task warning and is not retried.
- Dry-run drops are task `info` entries in every kind of task (upstream: only in full and object
  syncs; the signal tasks log to the worker log).
- Task logs use logger "authentik.providers.scim.tasks"; a successful object sync logs only
  "Syncing page 1 of groups" (upstream words it "page 1 or groups"), and an object out of scope
  or unknown logs the same and pushes nothing.
- `aggregated_status` is the worst log level (error > warning > info > done) on every version
  with the tasks API. Sync status: `last_sync_status` is the newest task of the provider (any
  kind, so a failed direct sync shows), `last_successful_sync` the newest full sync that ended
  done/info; both absent until there is one.
- Users: POST/PUT/PATCH run the user's direct sync (POST /Users, or PUT when the payload
  changed; 409 adopts by `userName eq`); a `groups` list replaces the user's groups with m2m
  signals. DELETE sends `DELETE /Users/{id}`, which Cloudflare does not route: a task warning.
  The token's own user (akadmin) cannot be deleted (400). User payload: userName = username,
  name.formatted/givenName/familyName split at the first space, displayName, active, one primary
  email (type "other"), externalId = uid.
- Errors: unknown path 404 `{"detail": "Not found."}`, wrong method 405, an unknown or malformed
  id 404 "No <Model> matches the given query.", bad JSON 400 `parse_error`. Faults: "5xx" answers
  500/502/503 `{"detail": <phrase>}`, "429" `{"detail": "Request was throttled."}` + Retry-After.
- Provider and group names are unique (400 on the field). A link for the same (scim_id, object,
  provider) twice is a 400; other duplicates are allowed and the first one is used.
- `search` on users covers username, name and email; on SCIM providers the name. A path without
  its trailing slash is a 404 (no redirect). Property mappings are the two managed defaults,
  read-only; their expressions are not evaluated (the group payload is always `displayName` =
  the group name, `externalId` = the group uuid).
- Discovery (2026.2+, `discovery_enabled` default true in 2026.8) runs at the start of each full
  sync and links remote users by userName and groups by displayName. The post-2026.8 cleanup that
  deletes out-of-scope remote objects is not modelled (released versions do not have it).
"""

from .server import AuthentikSandbox

__all__ = ["AuthentikSandbox"]
