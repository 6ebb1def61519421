"""The embedded Microsoft Entra ID emulator (Graph v1.0 and the token endpoint), the IdP side of
`--mode idp --idp entra`.

    from migrate.sandbox import Sandbox
    from migrate.sandbox.entra import EntraSandbox

    with Sandbox(rate_limit=None) as cf, EntraSandbox(cloudflare=cf) as entra:
        entra.environment()   # ENTRA_TENANT_ID, ENTRA_CLIENT_ID, ENTRA_CLIENT_SECRET, ENTRA_LOGIN_URL, ENTRA_GRAPH_URL
        entra.run_cycle(); entra.settle()
        entra.inject("POST", r"/provisionOnDemand$", "429")

Options: `roles` (the application permissions the app registration was granted), `assigned` (the
seeded CF- groups are assigned to the enterprise application), `app` (False: no enterprise
application at all), `quarantined` (the job starts in quarantine), `scim_token` (the Secret Token
the job sends: another one makes every push fail with Cloudflare's 401 and quarantines the job),
`cycle_seconds` (a provisioning cycle every so many seconds, default 2: Entra's 40 minutes
compressed; None: only `run_cycle()`),
`token_lifetime`, `throttle` ((requests, seconds) for every Graph call), `on_demand_limit`
(provisionOnDemand's documented 5 requests per 10 seconds, compressed by default to 5 per second,
which `environment()` passes on as ENTRA_ON_DEMAND_RATE), `latency_ms`, `host`, `port`.

The seed, from the Cloudflare sandbox: one user per Cloudflare SCIM user (userPrincipalName =
mail = userName); one security group per non-empty system (virtual) group, same name and members,
and one per SCIM-managed User Group; an enterprise application "Cloudflare" (a non-gallery
service principal) whose synchronization job's Tenant URL is the account's SCIM endpoint and
Secret Token the sandbox's token; every seeded group assigned to it and linked to its Cloudflare
group as if the last cycle had written it; "Engineering" (an Entra-only user and one Cloudflare
user), not assigned.

Where Graph documents behaviour, the sandbox follows it: `members@odata.bind` takes at most 20
references per request; provisionOnDemand takes one group with at most five members, only for a
group in scope, at most 5 requests per 10 seconds (429 with Retry-After), and provisions after
the answer; a group's provisioning matches Cloudflare's group by displayName, else creates it with
externalId = the group's id; a cycle exports every assigned group (members added and removed) and
deletes in Cloudflare each linked group that left the scope; the Tenant URL and Secret Token are
write-only (no GET of synchronization secrets in v1.0); errors have Graph's
`{"error": {"code", "message", "innerError"}}` shape and the token endpoint AADSTS codes.

Where Graph documents nothing, the sandbox chooses, and says so here:
- An on-demand request adds the named members; removals wait for a cycle.
- A cycle logs one provisioning entry per group it changed (none for an unchanged group); an
  on-demand request logs one for its group even when nothing changed. Users leaving the scope
  are not disabled in Cloudflare (Entra would send `active: false`).
- A push refused with 401/403 quarantines the job (Entra quarantines after repeated failures);
  while quarantined no cycle runs; on-demand requests still run and fail the same way.
- Tokens are opaque strings (Entra's are JWTs); their lifetime is `token_lifetime`.
- Pushes run on `authentik.worker.Worker` (delays, any order, retries of 5xx/429/network errors).
"""

from .server import FULL_ROLES, EntraSandbox

__all__ = ["EntraSandbox", "FULL_ROLES"]
