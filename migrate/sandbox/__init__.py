"""The embedded Cloudflare API emulator.

    from migrate.sandbox import Sandbox
    from migrate.sandbox.seeds import demo_seed, generate_seed

    with Sandbox(seed=demo_seed(), rate_limit=None) as sb:   # port 0: a free loopback port
        sb.base_url, sb.account_id, sb.token                 # base_url ends in /client/v4
        sb.inject("POST", r"/iam/user_groups$", "lose")      # "5xx" | "429" | "lose" | "timeout"
        sb.state.user_groups_by_name(); sb.state.snapshot(); sb.calls

Module map: `server` (HTTP, auth, rate limit, faults), `api` (v4 endpoints), `scim` (SCIM v2),
`state` (the account and Cloudflare's write rules), `render` (response shapes), `seeds`.

Where Cloudflare documents nothing, the sandbox chooses, and says so here:
- User group names are unique (duplicate -> 400); the `CF` prefix (any case) is rejected.
- Policies must name permission and resource groups by id; the docs' inline `scope` form is
  rejected, as the schema requires ids. A resource group used by a policy cannot be deleted.
- Every user group is also a custom SCIM group with the same id; SCIM-pushed groups are
  `scim_managed` (name, members and deletion locked outside SCIM). Pushing a group whose name a
  Cloudflare group already has adopts it.
- System (virtual) groups drive roles, as documented: adding a SCIM user to `CF-<acct> - <Role>`
  gives the account member that legacy role (in `GET /members` `roles`); removing them takes it
  away, unless another system group they are still in grants the same role (the role is not
  remembered as hand-assigned: Cloudflare cannot tell the two apart either). Re-provisioning a
  user (`active: true`) grants the roles of the system groups they are in. A seed's
  `scim_groups[].role` names the role; without it, the backing permission group's namesake.
- `before_end_of_life=True` (or `state.before_end_of_life`): a SCIM `POST /Groups` named
  `CF-<this account> - <role name>` makes a system group granting that role, as Cloudflare did
  before 2025-12-02; used to seed an account the way an IdP built it (`seeds.unprovisioned_seed`),
  then switched off. Another account, an unknown role or a taken name is refused (400, 409).
- `record_scim = True`: `scim_requests` keeps every SCIM request with its body (differential tests).
- Resource groups may have no name (Cloudflare makes unnamed ones for inline policy scopes); the
  response then has no `name`. `State.effective_access()` is the sandbox's own access oracle.
- Authentication errors and 429s come from the edge, so they use the v4 envelope on SCIM paths too.
- A "timeout" fault is never applied; a "lose" fault always is.
- Bodies are checked against the schema's request shapes: required fields, types (`null` is not
  a string or an array), `access` allow|deny, member bodies as bare `[{"id"}]` arrays; a violation
  is a 400 and writes nothing. `PUT /iam/user_groups/{id}` needs a 32-hex `id` on every policy: one
  the group has keeps it, an unknown one makes a NEW policy with a fresh server-minted id (never
  the one sent). Member policies may omit `id` (API-NOTES 7), and empty `permission_groups` /
  `resource_groups` arrays are refused although the schema allows them.
- Permission-group `meta` values are always strings (`"deprecated": "true"`), as the SDK types them.
- Edge errors (400, observed live, not in the notes): no credentials -> 9106; an Authorization
  header that is not `Bearer <token chars>` -> 6003 with `error_chain` [6111]. A path that matches
  no route, or names an IAM id that is not 32 hex -> 7003 "Could not route to ..." followed by
  7000 "No route for that URI". A well-formed unknown id still routes and is a 404.
- Audit: every successful write gets an Audit Logs v2 entry (`GET /logs/audit`; since/before
  required, cursor paging with `limit` <= 1000, `result_info.cursor` and `.cursors.after` both
  sent); its `raw.cf_ray_id` is the response's `cf-ray` without the `-SBX` colo suffix. v1 keeps
  to its schema: v4 writes only (SCIM is logged in v2 only), `metadata` empty, `resource` only
  `{id}`. v1 actor type is "user" for account-owned tokens too (v1 has no "account" type); v2 uses
  "account". v2 `resource.product` ("iam"/"scim") and `resource.type` values are the sandbox's
  own. Error codes without a published value are in `errors.py`.
"""

from .server import Sandbox
from .state import SeedError

__all__ = ["Sandbox", "SeedError"]
