"""An account that used virtual groups through Authentik, built the way it was built then: users
and `CF-` groups in a real Authentik, a SCIM provider pointing at the Cloudflare sandbox (on
127.0.0.1, so Authentik's worker reaches it) attached to an application, and Authentik's own full
sync pushing them while the sandbox still takes `CF-` groups (`before_end_of_life`). The links
from Authentik groups to Cloudflare's system groups therefore exist, made by this provider."""

import time
from dataclasses import dataclass, field

from migrate.sandbox import Sandbox
from migrate.sandbox.seeds import unprovisioned_seed

from .ak import PREFIX, wait_for

SUPER = "Super Administrator - All Privileges"
# Who is in which CF- group (demo account emails); Ava (the break-glass admin) holds Super
# Administrator directly in Cloudflare and is not in Authentik at all.
PEOPLE = {
    "ben.brandt@acme-corp.example": ["Administrator"],
    "chloe.castillo@acme-corp.example": ["Administrator"],
    "dana.whitfield@acme-corp.example": ["Administrator", "DNS"],
    "farah.farouk@acme-corp.example": [SUPER],
    "hana.hayashi@acme-corp.example": ["DNS"],
    "ivan.ivanova@acme-corp.example": ["DNS"],
}
BREAK_GLASS = "ava.abbott@acme-corp.example"


@dataclass
class World:
    cf: Sandbox
    provider_pk: int
    application_slug: str
    users: dict  # email -> Authentik user pk
    groups: dict  # role name -> Authentik group (as created)
    group_names: dict  # role name -> CF- group name
    timings: dict = field(default_factory=dict)

    def env(self, ak_url, ak_token, db):
        return {
            "CLOUDFLARE_API_TOKEN": self.cf.token, "CLOUDFLARE_ACCOUNT_ID": self.cf.account_id,
            "CLOUDFLARE_BASE_URL": self.cf.base_url, "AUTHENTIK_URL": ak_url, "AUTHENTIK_TOKEN": ak_token,
            "VGMIGRATE_DB": str(db), "VGMIGRATE_PROGRESS_SECONDS": "5",
        }


def roles_by_email(cf):
    """{email: set of legacy role names} for every account member (the sandbox's own state)."""
    with cf.state.lock:
        return {m["email"]: {cf.state.roles[r]["name"] for r in m["roles"]} for m in cf.state.members.values()}


def cf_group_name(account_id, role):
    return f"CF-{account_id} - {role}"


def build(ak, people=PEOPLE, timeout=180.0):
    """Seed Authentik and the sandbox; returns a started World (stop `world.cf` when done)."""
    cf = Sandbox(seed=unprovisioned_seed(), rate_limit=None, before_end_of_life=True).start()
    try:
        return _build(ak, cf, people, timeout)
    except BaseException:
        cf.stop()
        raise


def _build(ak, cf, people, timeout):
    started = time.monotonic()
    users = {}
    for email in people:
        first, last = email.split("@")[0].split(".")
        users[email] = ak.create_user(email, f"{first.title()} {last.title()}", email)["pk"]
    # Only the lane's users are in the provider's scope (not akadmin, whose username is no email).
    scope = ak.create_group(f"{PREFIX} Cloudflare users", users.values())
    roles = sorted({r for rs in people.values() for r in rs})
    names = {role: cf_group_name(cf.account_id, role) for role in roles}
    groups = {role: ak.create_group(names[role], [users[e] for e, rs in people.items() if role in rs]) for role in roles}
    provider = ak.create_provider(f"{PREFIX} Cloudflare SCIM", f"{cf.base_url}/accounts/{cf.account_id}/scim/v2", cf.token,
                                  filter_group=scope["pk"])
    slug = f"{PREFIX}-cloudflare"
    ak.create_application(f"{PREFIX} Cloudflare", slug, [provider["pk"]])
    world = World(cf, provider["pk"], slug, users, groups, names)
    world.timings["seed_objects_s"] = time.monotonic() - started

    want = {email: set(rs) for email, rs in people.items()}
    sync_sent = time.monotonic()
    ak.full_sync(provider["pk"])
    resent = [sync_sent]

    def seeded():
        have = roles_by_email(cf)
        if all(have.get(e, set()) >= rs for e, rs in want.items()):
            return True
        # A full sync pushes a group page while its users may not be linked yet (two workers run
        # the pages at once): such a group misses members until the next full sync, so send one.
        if time.monotonic() - resent[-1] > 30:
            ak.full_sync(provider["pk"])
            resent.append(time.monotonic())
        return False

    wait_for("Authentik's full sync to give every CF- group member their role in the sandbox", seeded, timeout=timeout)
    world.timings["seed_sync_s"] = time.monotonic() - sync_sent
    world.timings["seed_full_syncs"] = len(resent)
    linked = wait_for("a SCIM link for every CF- group", lambda: (lambda l: l if set(names.values()) <= l else None)(
        {link["group_obj"]["name"] for link in ak.group_links(provider["pk"])}), timeout=30)
    assert linked
    # Cloudflare's end of life: from here on a CF- group push is refused, as today.
    cf.state.before_end_of_life = False
    return world
