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
  Cloudflare group already has adopts it. Membership changes of system (virtual) groups change the
  SCIM users' `groups` only, not members' legacy roles.
- Authentication errors and 429s come from the edge, so they use the v4 envelope on SCIM paths too.
- A "timeout" fault is never applied; a "lose" fault always is.
- Audit entries use actor type "user" for account-owned tokens too: the v1 schema has no
  "account" actor type. Error codes without a published value are in `errors.py`.
"""

from .server import Sandbox
from .state import SeedError

__all__ = ["Sandbox", "SeedError"]
