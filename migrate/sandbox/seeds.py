"""Seeds: the account a Sandbox starts with, as a plain JSON-able dict.

Format (also the JSON file for `vgmigrate sandbox serve --seed FILE`; `State.snapshot()` returns it)::

    {
      "account": {"id": <32 hex>, "name": str, "type": "enterprise"|"standard",
                  "created_on"?: str, "settings"?: {...}},
      "permission_groups": [{"id", "name",
                             "meta": {"label", "scopes": "com.cloudflare.api.account"
                                                       | "com.cloudflare.api.account.zone",
                                      "deprecated"?: bool}}],
      "roles": [{"id", "name", "description", "permissions": {"dns": {"read", "write"}, ...}}],
      "members": [{"id", "email", "status": "accepted"|"pending",
                   "user": {"id", "email", "first_name", "last_name",
                            "two_factor_authentication_enabled"},
                   "roles": [<role id>, ...],
                   "policies": [{"id", "access", "permission_groups": [{"id"}],
                                 "resource_groups": [{"id"}]}]}],
      "resource_groups": [{"id", "name", "scope": {"key", "objects": [{"key"}]}, "meta"?: {...}}],
      "user_groups": [{"id", "name", "policies": [<policy as above>], "members": [<member id>, ...],
                       "scim_managed": bool, "externalId"?: str,
                       "created_on"?: str, "modified_on"?: str}],
      "scim_groups": [{"id": "cloudflare-v1-<tag>", "displayName": "CF-<acct> - <Role>",
                       "system": true}],
      "scim_users": [{"id": <user tag = members[].user.id>, "userName": <email>, "active": bool,
                      "groups": [<scim_groups id>, ...], "name"?: {"givenName", "familyName"},
                      "displayName"?: str, "externalId"?: str}]
    }

`scim_groups` are the legacy virtual (system) groups; every user group is also a custom SCIM
group with the same id, and a SCIM user's custom-group membership comes from `user_groups[].members`
(matched through `members[].user.id`), so `scim_users[].groups` lists system groups only.
References are ids; the API expands them in responses. All keys except `account` may be omitted.
"""

import hashlib
import random
from itertools import accumulate

ACCOUNT_SCOPE = "com.cloudflare.api.account"
ZONE_SCOPE = "com.cloudflare.api.account.zone"
DOMAIN = "acme-corp.example"

# Ids published in Cloudflare's docs and public Terraform, kept so the seed looks like the real thing.
KNOWN_PERMISSION_GROUP_IDS = {"Firewall": "10515a9267294c2e8dd974332556a33b", "DNS": "49ce85367bae433b9f0717ed4fea5c74"}
KNOWN_ROLE_IDS = {
    "Super Administrator - All Privileges": "33666b9c79b9a5273fc7344ff42f953d",
    "Administrator": "05784afa30c1afe1440e79d9351c7430",
    "DNS": "069fe803647ed3609e93d041d5df6050",
}

# (name, label) of the account-scoped permission groups in the demo account (names from the docs).
ACCOUNT_PERMISSION_GROUPS = [
    ("Administrator", "admin"),
    ("Administrator Read Only", "admin_readonly"),
    ("Super Administrator - All Privileges", "super_admin"),
    ("Analytics", "analytics"),
    ("Audit Logs Viewer", "audit_logs_viewer"),
    ("Billing", "billing"),
    ("Cache Purge", "cache_purge"),
    ("Cloudflare Access", "access"),
    ("Cloudflare Gateway", "gateway"),
    ("Cloudflare R2 Admin", "r2_admin"),
    ("Cloudflare Zero Trust", "zt_admin"),
    ("DNS", "dns_admin"),
    ("Firewall", "waf_admin"),
    ("Hyperdrive Admin", "hyperdrive_admin"),
    ("Hyperdrive Read", "hyperdrive_read"),
    ("Load Balancer", "load_balancer_admin"),
    ("Log Share", "logshare"),
    ("Minimal Account Access", "minimal_account_access"),
    ("Page Shield", "page_shield"),
    ("SSL/TLS, Caching, Performance, Page Rules, and Customization", "ssl_perf"),
    ("Trust and Safety", "trust_and_safety"),
    ("Turnstile", "turnstile"),
    ("Vectorize Admin", "vectorize_admin"),
    ("Workers Platform Admin", "workers_platform_admin"),
    ("Workers Platform (Read-only)", "workers_platform_read"),
    ("Zaraz Admin", "zaraz_admin"),
]
ZONE_PERMISSION_GROUPS = [("Domain Administrator", "domain_admin"), ("Domain DNS", "domain_dns")]
DEPRECATED_PERMISSION_GROUPS = [("Workers Admin", "workers_admin")]
# Legacy roles that no longer have a permission group of the same name (SEMANTICS 2.2).
LEGACY_ONLY_ROLES = ["Cloudflare Workers Admin", "HTTP Applications"]

FIRST_NAMES = [
    "Ava", "Ben", "Chloe", "Dana", "Eli", "Farah", "Gus", "Hana", "Ivan", "Jade", "Kai", "Lena", "Marco",
    "Nia", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tara", "Umar", "Vera", "Wes", "Xin", "Yara", "Zeke",
    "Amir", "Bea", "Caleb", "Dora", "Emil", "Fay", "Gita", "Hugo", "Iris", "Jon", "Kira", "Luis", "Mei", "Noor",
]
LAST_NAMES = [
    "Abbott", "Brandt", "Castillo", "Whitfield", "Eriksen", "Farouk", "Gallo", "Hayashi", "Ivanova", "Jensen",
    "Kowalski", "Lindqvist", "Moreau", "Nakamura", "Okafor", "Patel", "Quint", "Rossi", "Svensson", "Tanaka",
    "Usman", "Varga", "Weber", "Xu", "Yilmaz", "Zimmer", "Ahmadi", "Barros", "Cohen", "Duarte", "Eze", "Fischer",
    "Gupta", "Horvat", "Ito", "Jovanovic", "Kim", "Lopez", "Meyer", "Nowak",
]
PERMISSION_KEYS = ["analytics", "billing", "cache_purge", "dns", "dns_records", "lb", "logs", "organization", "ssl", "waf", "zone_settings", "zones"]


def tag(label):
    """A stable 32-hex id for a label (the demo account's ids never change)."""
    return hashlib.md5(f"vgmigrate-demo:{label}".encode()).hexdigest()


def _permissions(role_name):
    full = role_name.startswith(("Administrator", "Super Administrator"))
    write = full and "Read Only" not in role_name
    grants = {key: {"read": full, "write": write} for key in PERMISSION_KEYS}
    for keyword, keys in (("DNS", ("dns", "dns_records", "zones")), ("Firewall", ("waf", "zones")), ("Billing", ("billing",)),
                          ("Analytics", ("analytics",)), ("Cache", ("cache_purge",)), ("Load", ("lb",)), ("Log", ("logs",)),
                          ("SSL", ("ssl", "zone_settings"))):
        if keyword in role_name:
            for key in keys:
                grants[key] = {"read": True, "write": "Read" not in role_name}
    return grants


def _role(role_id, name):
    return {"id": role_id, "name": name, "description": f"Grants the {name} role on the account", "permissions": _permissions(name)}


def _virtual_group(group_id, display_name):
    return {"id": f"cloudflare-v1-{group_id}", "displayName": display_name, "system": True}


def demo_seed():
    """A realistic, deterministic enterprise account with every awkward virtual-group case."""
    account_id = tag("account")
    foreign_account = tag("foreign-account")

    permission_groups, pg_ids = [], {}
    for names, scope, extra in (
        (ACCOUNT_PERMISSION_GROUPS, ACCOUNT_SCOPE, {}),
        (ZONE_PERMISSION_GROUPS, ZONE_SCOPE, {}),
        (DEPRECATED_PERMISSION_GROUPS, ACCOUNT_SCOPE, {"deprecated": True}),
    ):
        for name, label in names:
            pg_id = KNOWN_PERMISSION_GROUP_IDS.get(name) or tag(f"pg:{name}")
            pg_ids[name] = pg_id
            permission_groups.append({"id": pg_id, "name": name, "meta": {"label": label, "scopes": scope, **extra}})

    role_names = [name for name, _ in ACCOUNT_PERMISSION_GROUPS] + LEGACY_ONLY_ROLES
    role_ids = {name: KNOWN_ROLE_IDS.get(name) or tag(f"role:{name}") for name in role_names}
    roles = [_role(role_ids[name], name) for name in role_names]

    vg = {
        "admin": _virtual_group(pg_ids["Administrator"], f"CF-{account_id} - Administrator"),
        "super": _virtual_group(pg_ids["Super Administrator - All Privileges"], f"CF-{account_id} - Super Administrator - All Privileges"),
        "dns": _virtual_group(pg_ids["DNS"], f"CF-{account_id}-DNS"),
        "audit": _virtual_group(pg_ids["Audit Logs Viewer"], f"CF-{account_id} -  Audit Logs\u00a0Viewer"),
        "readonly": _virtual_group(pg_ids["Administrator Read Only"], f"cf-{account_id.upper()} - Administrator Read Only"),
        "workers": _virtual_group(role_ids["Cloudflare Workers Admin"], f"CF-{account_id} - Cloudflare Workers Admin"),
        "http": _virtual_group(role_ids["HTTP Applications"], f"CF-{account_id} - HTTP Applications"),
        "foreign": _virtual_group(tag("foreign-admin"), f"CF-{foreign_account} - Administrator"),
    }
    # The legacy role each virtual group grants (None: it grants nothing in this account).
    grants = {
        "admin": "Administrator", "super": "Super Administrator - All Privileges", "dns": "DNS", "audit": "Audit Logs Viewer",
        "readonly": "Administrator Read Only", "workers": "Cloudflare Workers Admin", "http": "HTTP Applications", "foreign": None,
    }

    # person index -> (virtual groups, extra direct roles, drift: roles the group grants that are missing)
    people = {
        1: (["admin"], [], []), 2: (["admin"], [], []), 3: (["admin", "dns"], [], []), 4: (["admin"], [], ["admin"]),
        5: (["super"], [], []), 6: (["super"], [], []),
        7: (["dns"], [], []), 8: (["dns"], [], []), 9: (["dns"], [], []), 10: (["dns", "audit"], [], []),
        11: (["audit"], [], []), 12: (["audit"], [], []),
        13: (["readonly"], [], []), 14: (["readonly"], [], []), 15: (["readonly"], [], []), 16: (["readonly"], [], ["readonly"]),
        17: (["readonly", "workers"], [], []),
        18: (["workers"], [], []), 19: (["workers"], [], ["workers"]), 20: (["workers"], ["Workers Platform Admin"], []),
        21: (["http"], [], []), 22: (["http", "dns"], [], []),
        23: (["foreign"], ["Administrator Read Only"], []), 24: (["foreign"], ["Analytics"], []),
        25: ([], ["DNS"], []),  # holds DNS directly without being in the DNS virtual group (drift)
    }
    pending_person = 15  # invited through SCIM, has not accepted yet
    mixed_case_person = 3  # the IdP sends this user's email with capitals
    direct_roles = {26: ["Billing"], 27: ["Billing", "Analytics"], 28: ["Firewall"], 29: ["Analytics"], 30: ["Minimal Account Access"],
                    31: ["Cloudflare Zero Trust"], 32: ["Log Share"], 33: ["Hyperdrive Read"], 34: ["Cache Purge"],
                    35: ["Minimal Account Access"], 36: ["Load Balancer"], 37: ["Turnstile"], 38: ["Page Shield"], 39: ["Minimal Account Access"]}
    security_team = [31, 32, 28]  # members of the SCIM-pushed "Security Team" user group

    zone_rg = {
        "id": tag("rg:zone"),
        "name": "acme-corp.example zone",
        "scope": {"key": f"{ZONE_SCOPE}.{tag('zone:acme-corp.example')}", "objects": [{"key": "*"}]},
        "meta": {"key": "editable", "value": "true"},
    }

    members, scim_users = [], []
    for i in range(40):
        first, last = FIRST_NAMES[i], LAST_NAMES[i]
        email = f"{first.lower()}.{last.lower()}@{DOMAIN}"
        member_id, user_id = tag(f"member:{i}"), tag(f"user:{i}")
        groups, extra, drift = people.get(i, ([], [], []))
        held = [grants[g] for g in groups if grants[g] and g not in drift] + extra + direct_roles.get(i, [])
        if i == 0:
            held = ["Super Administrator - All Privileges"]  # the break-glass admin outside SCIM
        member = {
            "id": member_id,
            "email": email,
            "status": "pending" if i == pending_person else "accepted",
            "user": {"id": user_id, "email": email, "first_name": first, "last_name": last, "two_factor_authentication_enabled": i % 3 != 1},
            "roles": [role_ids[r] for r in dict.fromkeys(held)],
            "policies": [],
        }
        if i == 28:
            member["policies"] = [{"id": tag("policy:28"), "access": "allow", "permission_groups": [{"id": pg_ids["Domain DNS"]}], "resource_groups": [{"id": zone_rg["id"]}]}]
        members.append(member)
        if groups or i in security_team:
            user_name = f"{first}.{last}@Acme-Corp.example" if i == mixed_case_person else email
            scim_users.append({
                "id": user_id,
                "userName": user_name,
                "active": True,
                "groups": [vg[g]["id"] for g in groups],
                "name": {"givenName": first, "familyName": last},
                "externalId": f"00u{tag(f'okta:{i}')[:17]}",
            })
    # Provisioned by the IdP, in the DNS virtual group, but never became an account member.
    scim_users.append({
        "id": tag("user:contractor"),
        "userName": f"contractor.kim@{DOMAIN}",
        "active": True,
        "groups": [vg["dns"]["id"]],
        "name": {"givenName": "Sam", "familyName": "Kim"},
        "externalId": f"00u{tag('okta:contractor')[:17]}",
    })

    user_groups = [
        {
            # Same name as the permission group the `cf-... - Administrator Read Only` group resolves to.
            "id": tag("ug:readonly"),
            "name": "Administrator Read Only",
            "policies": [],
            "members": [tag("member:29"), tag("member:30")],
            "scim_managed": False,
            "created_on": "2025-07-14T08:30:00Z",
            "modified_on": "2025-07-14T08:30:00Z",
        },
        {
            "id": tag("ug:security"),
            "name": "Security Team",
            "policies": [],
            "members": [tag(f"member:{i}") for i in security_team],
            "scim_managed": True,
            "externalId": "00g-security-team",
            "created_on": "2025-09-02T12:00:00Z",
            "modified_on": "2025-09-02T12:00:00Z",
        },
    ]

    return {
        "account": {
            "id": account_id,
            "name": "Acme Corp",
            "type": "enterprise",
            "created_on": "2019-03-04T10:00:00Z",
            "settings": {"enforce_twofactor": True, "abuse_contact_email": f"abuse@{DOMAIN}"},
        },
        "permission_groups": permission_groups,
        "roles": roles,
        "members": members,
        "resource_groups": [zone_rg],
        "user_groups": user_groups,
        "scim_groups": list(vg.values()),
        "scim_users": scim_users,
    }


def generate_seed(groups=2000, members=50000, random_seed=0):
    """A large deterministic account for benchmarks: `groups` permission groups, legacy roles and
    virtual groups, `members` members (most provisioned by SCIM into 1-3 virtual groups, with a
    long-tailed spread: a few big groups, many small ones) and a little role drift."""
    if groups < 1 or members < 1:
        raise ValueError("generate_seed needs at least one group and one member")
    rng = random.Random(random_seed)

    def new_id():
        return "%032x" % rng.getrandbits(128)

    account_id = new_id()
    names = [name for name, _ in ACCOUNT_PERMISSION_GROUPS][:groups]
    names += [f"Generated Role {n:04d}" for n in range(1, groups - len(names) + 1)]
    permission_groups, roles, scim_groups, role_of_group = [], [], [], []
    for name in names:
        pg_id, role_id = new_id(), new_id()
        label = name.lower().replace(" ", "_")[:40]
        permission_groups.append({"id": pg_id, "name": name, "meta": {"label": label, "scopes": ACCOUNT_SCOPE}})
        roles.append(_role(role_id, name))
        scim_groups.append(_virtual_group(pg_id, f"CF-{account_id} - {name}"))
        role_of_group.append(role_id)
    super_role = roles[names.index("Super Administrator - All Privileges")]["id"] if "Super Administrator - All Privileges" in names else roles[0]["id"]

    weights = list(accumulate(1.0 / (rank + 1) for rank in range(groups)))
    member_rows, scim_users = [], []
    for i in range(members):
        member_id, user_id = new_id(), new_id()
        email = f"user{i:06d}@{DOMAIN}"
        if i == 0:
            picked, in_scim = [], False
            role_ids = [super_role]
        else:
            picked = sorted(set(rng.choices(range(groups), cum_weights=weights, k=rng.choice((1, 1, 1, 2, 2, 3)))))
            in_scim = rng.random() < 0.97
            drifted = rng.random() < 0.02
            role_ids = [role_of_group[g] for g in picked][: -1 if drifted else None]
        member_rows.append({
            "id": member_id,
            "email": email,
            "status": "pending" if rng.random() < 0.01 else "accepted",
            "user": {"id": user_id, "email": email, "first_name": FIRST_NAMES[i % 40], "last_name": LAST_NAMES[(i // 40) % 40],
                     "two_factor_authentication_enabled": True},
            "roles": role_ids,
            "policies": [],
        })
        if in_scim:
            scim_users.append({"id": user_id, "userName": email, "active": True, "groups": [scim_groups[g]["id"] for g in picked]})

    return {
        "account": {"id": account_id, "name": f"Generated Account {random_seed}", "type": "enterprise"},
        "permission_groups": permission_groups,
        "roles": roles,
        "members": member_rows,
        "resource_groups": [],
        "user_groups": [],
        "scim_groups": scim_groups,
        "scim_users": scim_users,
    }
