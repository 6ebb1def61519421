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
(before: `parent`/`parent_name`); `group_filters` and the adoption of a group after a 409 from 2026.2 (before: `filter_group`,
which the sandbox stores but does not apply, and every group in scope); the full-sync cleanup of
out-of-scope groups and users from 2026.2.2; AKQL `search` from 2026.5;
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
- Pushes run later, as authentik's do: the request queues them on `worker.Worker` (two threads)
  and answers; each message waits `push_delay` (default 0.02 to 0.25 s), so independent pushes land
  in any order. A signal task (direct, membership, delete) whose request fails with anything but a
  404 or 409 (authentik: SCIMRequestException, a TransientSyncException) is retried after
  `retry_backoff` seconds, doubling, `max_retries` (5) times; its one task record stays `queued`
  meanwhile and ends `done`, or `rejected` when the retries are used up. A full sync queues one page
  task per page and waits for them; a 409 it cannot adopt fails the page task, which is retried.
  `sync/object` waits for its task at most `object_sync_wait` (10 s) and answers 500 after that,
  the task still running. `settle()` waits until the worker is idle (tests acting as a person).
- Dry-run drops are task `info` entries in every kind of task (upstream: only in full and object
  syncs; the signal tasks log to the worker log).
- Task logs use logger "authentik.providers.scim.tasks"; a successful object sync logs only
  "Syncing page 1 of groups" (upstream words it "page 1 or groups"), and an object out of scope
  or unknown logs the same and pushes nothing.
- `aggregated_status` is the worst log level (error > warning > info > done) on every version
  with the tasks API. Full syncs and their page tasks hang off the provider's schedule, signal and
  object-sync tasks off the provider. Sync status: `last_sync_status` is the schedule's newest
  finished task (the full sync itself logs only "info", so a failed page does not show there),
  `last_successful_sync` its newest that ended done/info; both absent until there is one.
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
- No discovery on any version (SCIM's `can_discover` is False up to 2026.5.0-rc1; which release
  turns it on is unknown): a CF- group has a link only if this provider created it, or adopted it
  after a 409 (groups from 2026.2). `discovery_enabled` (2026.8) is rendered, not acted on.
- From 2026.2.2 every full sync (the schedule, and every save of the provider) first syncs, then
  drops the links of users and groups now out of scope and sends `DELETE` for each (notes:
  `_sync_cleanup`, in tag 2026.2.2).
"""

from .server import AuthentikSandbox

__all__ = ["AuthentikSandbox"]
