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
    # The rest of the docs' account-scoped roles (SEMANTICS 2.1): a real account lists them all.
    ("API Gateway", "api_gateway"),
    ("API Gateway Read", "api_gateway_read"),
    ("Bot Management (Account-wide)", "bot_management_account"),
    ("Cloudflare CASB", "casb"),
    ("Cloudflare CASB Read", "casb_read"),
    ("Cloudflare DEX", "dex"),
    ("Cloudflare Images", "images"),
    ("Cloudflare R2 Read", "r2_read"),
    ("Cloudflare Stream", "stream"),
    ("Cloudflare Zero Trust DNS Locations Write", "zt_dns_locations_write"),
    ("Cloudflare Zero Trust PII", "zt_pii"),
    ("Cloudflare Zero Trust Read Only", "zt_read_only"),
    ("Cloudflare Zero Trust Reporting", "zt_reporting"),
    ("Email Configuration Admin", "email_configuration_admin"),
    ("Email Integration Admin", "email_integration_admin"),
    ("Email security Analyst", "email_security_analyst"),
    ("Email security Read Only", "email_security_read_only"),
    ("Email security Reporting", "email_security_reporting"),
    ("Email security Policy Admin", "email_security_policy_admin"),
    ("Log Share Reader", "logshare_reader"),
    ("Magic Network Monitoring", "magic_network_monitoring"),
    ("Magic Network Monitoring Admin", "magic_network_monitoring_admin"),
    ("Magic Network Monitoring Read-Only", "magic_network_monitoring_read"),
    ("Network Services Write (Magic)", "magic_network_services_write"),
    ("Network Services Read (Magic)", "magic_network_services_read"),
    ("Page Shield Read", "page_shield_read"),
    ("Secrets Store Admin", "secrets_store_admin"),
    ("Secrets Store Deployer", "secrets_store_deployer"),
    ("Secrets Store Reporter", "secrets_store_reporter"),
    ("Security Center Brand Protection", "brand_protection"),
    ("Security Center Cloudforce One Admin", "cloudforce_one_admin"),
    ("Security Center Cloudforce One Read", "cloudforce_one_read"),
    ("Turnstile Read", "turnstile_read"),
    ("Vectorize Read only", "vectorize_read"),
    ("Waiting Room Admin", "waiting_room_admin"),
    ("Waiting Room Read", "waiting_room_read"),
    ("Connectivity Directory Read", "connectivity_directory_read"),
    ("Connectivity Directory Bind", "connectivity_directory_bind"),
    ("Connectivity Directory Admin", "connectivity_directory_admin"),
    ("Zaraz Edit", "zaraz_edit"),
    ("Zaraz Read", "zaraz_read"),
    ("Zone Versioning (Account-Wide)", "zone_versioning_account"),
    ("Zone Versioning Read (Account-Wide)", "zone_versioning_read_account"),
]
# Domain-scoped roles: granted on one zone (a resource group whose objects are zones).
ZONE_PERMISSION_GROUPS = [
    ("Domain Administrator", "domain_admin"),
    ("Domain DNS", "domain_dns"),
    ("Domain Administrator Read Only", "domain_admin_readonly"),
    ("Domain API Gateway", "domain_api_gateway"),
    ("Domain API Gateway Read", "domain_api_gateway_read"),
    ("Domain Bot Management", "domain_bot_management"),
    ("Domain Cache Purge", "domain_cache_purge"),
    ("Domain Caching", "domain_caching"),
    ("Domain Analytics", "domain_analytics"),
    ("Domain Firewall", "domain_waf"),
    ("Domain Load Balancer", "domain_load_balancer"),
    ("Domain Page Shield", "domain_page_shield"),
    ("Domain Page Shield Read", "domain_page_shield_read"),
    ("Domain SSL and Certificates", "domain_ssl"),
    ("Domain Waiting Room Admin", "domain_waiting_room_admin"),
    ("Domain Waiting Room Read", "domain_waiting_room_read"),
    ("Domain Workers Routes", "domain_workers_routes"),
    ("Domain Zaraz Admin", "domain_zaraz_admin"),
    ("Domain Zaraz Edit", "domain_zaraz_edit"),
    ("Domain Zaraz Read", "domain_zaraz_read"),
    ("Domain Health Checks Admin", "domain_health_checks_admin"),
    ("Domain Health Checks Read", "domain_health_checks_read"),
    ("Zone Versioning", "zone_versioning"),
    ("Zone Versioning Read", "zone_versioning_read"),
    ("Domain Transform Rules", "domain_transform_rules"),
    ("Domain Email Routing", "domain_email_routing"),
    ("Domain Page Rules", "domain_page_rules"),
]
# Resource-scoped groups (an R2 bucket, an Access application): scopes other than account or zone.
R2_BUCKET_SCOPE = "com.cloudflare.edge.r2.bucket"
ACCESS_APP_SCOPE = "com.cloudflare.api.account.access_app"
RESOURCE_PERMISSION_GROUPS = [
    ("Workers R2 Storage Bucket Item Write", "r2_bucket_item_write", R2_BUCKET_SCOPE),
    ("Workers R2 Storage Bucket Item Read", "r2_bucket_item_read", R2_BUCKET_SCOPE),
    ("Access App Admin", "access_app_admin", ACCESS_APP_SCOPE),
]
# (name, label, eol_at): account-scoped groups on their way out.
DEPRECATED_PERMISSION_GROUPS = [("Workers Admin", "workers_admin", "2025-06-30T00:00:00Z"),
                                ("Cloudflare Zero Trust Legacy Reporting", "zt_legacy_reporting", "2026-12-31T00:00:00Z")]
# Legacy roles that no longer have a permission group of the same name (SEMANTICS 2.2).
LEGACY_ONLY_ROLES = ["Cloudflare Workers Admin", "HTTP Applications"]

FIRST_NAMES = [
    "Ava", "Ben", "Chloe", "Dana", "Eli", "Farah", "Gus", "Hana", "Ivan", "Jade", "Kai", "Lena", "Marco",
    "Nia", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tara", "Umar", "Vera", "Wes", "Xin", "Yara", "Zeke",
    "Amir", "Bea", "Caleb", "Dora", "Emil", "Fay", "Gita", "Hugo", "Iris", "Jon", "Kira", "Luis", "Mei", "Noor",
    "Olga", "Pablo", "Rhea", "Sami", "Tomas", "Una", "Viktor", "Wanda",
]
LAST_NAMES = [
    "Abbott", "Brandt", "Castillo", "Whitfield", "Eriksen", "Farouk", "Gallo", "Hayashi", "Ivanova", "Jensen",
    "Kowalski", "Lindqvist", "Moreau", "Nakamura", "Okafor", "Patel", "Quint", "Rossi", "Svensson", "Tanaka",
    "Usman", "Varga", "Weber", "Xu", "Yilmaz", "Zimmer", "Ahmadi", "Barros", "Cohen", "Duarte", "Eze", "Fischer",
    "Gupta", "Horvat", "Ito", "Jovanovic", "Kim", "Lopez", "Meyer", "Nowak",
    "Oliveira", "Petrov", "Reyes", "Sato", "Toth", "Ueda", "Vogel", "Walsh",
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


def _virtual_group(group_id, display_name, role_id=None):
    """A system group; `role` (hidden, not rendered) is the legacy role its membership grants."""
    return {"id": f"cloudflare-v1-{group_id}", "displayName": display_name, "system": True, "role": role_id}


def _permission_groups(label_prefix=""):
    """Every permission group of the demo catalogue: [(name, label, meta)] in listing order."""
    rows = [(name, label, {"label": label, "scopes": ACCOUNT_SCOPE}) for name, label in ACCOUNT_PERMISSION_GROUPS]
    rows += [(name, label, {"label": label, "scopes": ZONE_SCOPE}) for name, label in ZONE_PERMISSION_GROUPS]
    rows += [(name, label, {"label": label, "scopes": scope}) for name, label, scope in RESOURCE_PERMISSION_GROUPS]
    rows += [(name, label, {"label": label, "scopes": ACCOUNT_SCOPE, "deprecated": True, "eol_at": eol})
             for name, label, eol in DEPRECATED_PERMISSION_GROUPS]
    return rows


def _scope(account_id, *objects):
    """A resource group scope as Cloudflare writes it: the account key, with "*" (the whole
    account) or zone / resource object keys."""
    return {"key": f"{ACCOUNT_SCOPE}.{account_id}", "objects": [{"key": o} for o in objects]}


def _zone(zone_id):
    return f"{ZONE_SCOPE}.{zone_id}"


def _policy(policy_id, access, pg_ids, rg_ids):
    return {"id": policy_id, "access": access, "permission_groups": [{"id": i} for i in pg_ids], "resource_groups": [{"id": i} for i in rg_ids]}


def demo_seed():
    """A small, realistic, deterministic enterprise account with every awkward case a real one has:
    a permission-group catalogue of 100+ (account, zone and resource scoped, some deprecated with
    `eol_at`), a system group for every account-scoped one (most of them empty), virtual-group
    name variants, named and unnamed, account-wide and zone resource groups, members with several
    policies (zone-scoped, deny), access only through User Groups, a SCIM-managed group with
    policies and a Cloudflare group that a target name collides with."""
    account_id = tag("account")
    foreign_account = tag("foreign-account")

    permission_groups, pg_ids = [], {}
    for name, _label, meta in _permission_groups():
        pg_id = KNOWN_PERMISSION_GROUP_IDS.get(name) or tag(f"pg:{name}")
        pg_ids[name] = pg_id
        permission_groups.append({"id": pg_id, "name": name, "meta": meta})

    role_names = [name for name, _ in ACCOUNT_PERMISSION_GROUPS] + LEGACY_ONLY_ROLES
    role_ids = {name: KNOWN_ROLE_IDS.get(name) or tag(f"role:{name}") for name in role_names}
    roles = [_role(role_ids[name], name) for name in role_names]
    for role in roles:  # what a legacy role is worth (Cloudflare renamed some: SEMANTICS 2.2)
        if role["name"] == "Cloudflare Workers Admin":
            role["permission_group"] = pg_ids["Workers Platform Admin"]
        elif role["name"] == "HTTP Applications":
            role["permission_group"] = None  # retired, no successor

    # Cloudflare's own system group for every account-scoped permission group, canonical names.
    system = [
        _virtual_group(pg_ids[name], f"CF-{account_id} - {name}", role_ids.get(name))
        for name, _label, meta in _permission_groups() if meta["scopes"] == ACCOUNT_SCOPE
    ]
    # The awkward ones IdPs linked to: name variants, retired roles, another account.
    vg = {
        "admin": system[0],
        "super": system[2],
        "dns": _virtual_group(tag("vg:dns-variant"), f"CF-{account_id}-DNS", role_ids["DNS"]),
        "audit": _virtual_group(tag("vg:audit-variant"), f"CF-{account_id} -  Audit Logs\u00a0Viewer", role_ids["Audit Logs Viewer"]),
        "readonly": _virtual_group(tag("vg:readonly-variant"), f"cf-{account_id.upper()} - Administrator Read Only", role_ids["Administrator Read Only"]),
        "workers": _virtual_group(role_ids["Cloudflare Workers Admin"], f"CF-{account_id} - Cloudflare Workers Admin", role_ids["Cloudflare Workers Admin"]),
        "http": _virtual_group(role_ids["HTTP Applications"], f"CF-{account_id} - HTTP Applications", role_ids["HTTP Applications"]),
        "foreign": _virtual_group(tag("foreign-admin"), f"CF-{foreign_account} - Administrator"),
    }
    assert vg["admin"]["displayName"].endswith(" - Administrator") and vg["super"]["displayName"].endswith("All Privileges")
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
        45: (["dns"], [], []),  # in the DNS virtual group, but denied DNS on the shop zone
    }
    pending_person = 15  # invited through SCIM, has not accepted yet
    mixed_case_person = 3  # the IdP sends this user's email with capitals
    direct_roles = {26: ["Billing"], 27: ["Billing", "Analytics"], 28: ["Firewall"], 29: ["Analytics"], 30: ["Minimal Account Access"],
                    31: ["Cloudflare Zero Trust"], 32: ["Log Share"], 33: ["Hyperdrive Read"], 34: ["Cache Purge"],
                    35: ["Minimal Account Access"], 36: ["Load Balancer"], 37: ["Turnstile"], 38: ["Page Shield"], 39: ["Minimal Account Access"]}
    security_team = [31, 32, 28, 46]  # members of the SCIM-pushed "Security Team" user group
    platform_team = [42, 43, 44, 20]  # the Cloudflare-made "Platform Engineering" group: 42-44 hold nothing else

    zones = {name: tag(f"zone:{name}") for name in ("acme-corp.example", "shop.acme-corp.example", "acme-news.example", "acme-promo.example")}
    rg = {
        "account": {"id": tag("rg:account"), "name": "All domains", "scope": _scope(account_id, "*")},
        "zone": {"id": tag("rg:zone"), "name": "acme-corp.example zone", "scope": _scope(account_id, _zone(zones["acme-corp.example"]))},
        # Made quietly, without a name, by a policy written with an inline scope (SEMANTICS 3.1).
        "shop": {"id": tag("rg:shop"), "scope": _scope(account_id, _zone(zones["shop.acme-corp.example"]))},
        "account-unnamed": {"id": tag("rg:account-unnamed"), "scope": _scope(account_id, "*")},
        "marketing": {"id": tag("rg:marketing"), "name": "Marketing sites",
                      "scope": _scope(account_id, _zone(zones["acme-news.example"]), _zone(zones["acme-promo.example"]))},
        "bucket": {"id": tag("rg:bucket"), "name": "assets bucket", "scope": _scope(account_id, f"{R2_BUCKET_SCOPE}.{account_id}_default_assets")},
    }
    for group in rg.values():
        group["meta"] = {"key": "editable", "value": "true"}
    policies = {
        28: [("allow", ["Domain DNS", "Domain Page Shield"], ["zone"]), ("allow", ["Domain Administrator"], ["shop"])],
        # Policies only, since several account-scoped policies per member are allowed (2025-10-30).
        40: [("allow", ["Analytics", "Audit Logs Viewer"], ["account-unnamed"]), ("allow", ["Domain Administrator"], ["zone"]),
             ("deny", ["Domain DNS"], ["zone"])],
        41: [("allow", ["Domain Administrator Read Only"], ["marketing"]), ("allow", ["Billing"], ["account"]),
             ("deny", ["Billing"], ["account-unnamed"])],
        45: [("deny", ["DNS"], ["shop"])],
    }

    members, scim_users = [], []
    for i in range(47):
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
            "policies": [
                _policy(tag(f"policy:{i}" if n == 0 else f"policy:{i}:{n}"), access, [pg_ids[p] for p in pgs], [rg[r]["id"] for r in rgs])
                for n, (access, pgs, rgs) in enumerate(policies.get(i, []))
            ],
        }
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
            # Same name as the permission group the `cf-... - Administrator Read Only` group resolves
            # to, and already granting it, but on one zone only.
            "id": tag("ug:readonly"),
            "name": "Administrator Read Only",
            "policies": [_policy(tag("policy:ug:readonly"), "allow", [pg_ids["Administrator Read Only"]], [rg["zone"]["id"]])],
            "members": [tag("member:29"), tag("member:30")],
            "scim_managed": False,
            "created_on": "2025-07-14T08:30:00Z",
            "modified_on": "2025-07-14T08:30:00Z",
        },
        {
            # Pushed by the IdP (locked), with policies attached in Cloudflare afterwards.
            "id": tag("ug:security"),
            "name": "Security Team",
            "policies": [
                _policy(tag("policy:ug:security:0"), "allow", [pg_ids["Firewall"], pg_ids["Page Shield"]], [rg["account"]["id"]]),
                _policy(tag("policy:ug:security:1"), "allow", [pg_ids["Domain SSL and Certificates"]], [rg["zone"]["id"], rg["shop"]["id"]]),
                _policy(tag("policy:ug:security:2"), "deny", [pg_ids["Billing"]], [rg["account"]["id"]]),
            ],
            "members": [tag(f"member:{i}") for i in security_team],
            "scim_managed": True,
            "externalId": "00g-security-team",
            "created_on": "2025-09-02T12:00:00Z",
            "modified_on": "2025-10-06T15:20:00Z",
        },
        {
            "id": tag("ug:platform"),
            "name": "Platform Engineering",
            "policies": [
                _policy(tag("policy:ug:platform:0"), "allow", [pg_ids["Workers Platform Admin"], pg_ids["Cloudflare R2 Admin"]], [rg["account-unnamed"]["id"]]),
                _policy(tag("policy:ug:platform:1"), "allow", [pg_ids["Workers R2 Storage Bucket Item Write"]], [rg["bucket"]["id"]]),
            ],
            "members": [tag(f"member:{i}") for i in platform_team],
            "scim_managed": False,
            "created_on": "2025-08-11T10:00:00Z",
            "modified_on": "2025-08-11T10:00:00Z",
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
        "resource_groups": list(rg.values()),
        "user_groups": user_groups,
        "scim_groups": system + [g for key, g in vg.items() if key not in ("admin", "super")],
        "scim_users": scim_users,
    }


def unprovisioned_seed():
    """The demo account as it was before an IdP pushed anything to it: no SCIM users, no system
    (virtual) groups, no User Groups; members keep their direct policies, and their roles only if
    no IdP provisioned them (so the break-glass Super Administrator, member 0, keeps hers). Push
    `CF-` groups into it with `Sandbox(before_end_of_life=True)` to build the virtual groups as an
    IdP did before 2025-12-02."""
    seed = demo_seed()
    provisioned = {user["id"] for user in seed["scim_users"]}
    for member in seed["members"]:
        if member["user"]["id"] in provisioned:
            member["roles"] = []
    seed["scim_groups"], seed["scim_users"], seed["user_groups"] = [], [], []
    return seed


def generate_seed(groups=2000, members=50000, random_seed=0):
    """A large deterministic account for benchmarks: `groups` account-scoped permission groups, each
    with its legacy role and system (virtual) group, plus a few zone-scoped, resource-scoped and
    deprecated (`eol_at`) ones; `members` members (most provisioned by SCIM into 1-3 virtual groups,
    with a long-tailed spread: a few big groups, many small ones) and a little role drift. Like a
    real account it also has two account-wide resource groups (one named as vgmigrate names its
    own, one unnamed) and zone resource groups (some unnamed); members with several policies
    (zone-scoped, deny); members who hold access only through a User Group; User Groups with
    policies, some SCIM-managed (locked), one named like a populated virtual group's permission
    group and granting it on a zone only, one SCIM-managed one likewise named. All of it follows
    from `random_seed`."""
    if groups < 1 or members < 1:
        raise ValueError("generate_seed needs at least one group and one member")
    rng = random.Random(random_seed)

    def new_id():
        return "%032x" % rng.getrandbits(128)

    account_id = new_id()
    names = [name for name, _ in ACCOUNT_PERMISSION_GROUPS][:groups]
    names += [f"Generated Role {n:04d}" for n in range(1, groups - len(names) + 1)]
    permission_groups, roles, scim_groups, role_of_group, pg_of_group = [], [], [], [], []
    for name in names:
        pg_id, role_id = new_id(), new_id()
        label = name.lower().replace(" ", "_")[:40]
        permission_groups.append({"id": pg_id, "name": name, "meta": {"label": label, "scopes": ACCOUNT_SCOPE}})
        roles.append(_role(role_id, name))
        scim_groups.append(_virtual_group(pg_id, f"CF-{account_id} - {name}", role_id))
        role_of_group.append(role_id)
        pg_of_group.append(pg_id)
    zone_pgs, resource_pgs = [], []
    for name, label in ZONE_PERMISSION_GROUPS[:8]:
        zone_pgs.append(new_id())
        permission_groups.append({"id": zone_pgs[-1], "name": name, "meta": {"label": label, "scopes": ZONE_SCOPE}})
    for name, label, scope in RESOURCE_PERMISSION_GROUPS:
        resource_pgs.append(new_id())
        permission_groups.append({"id": resource_pgs[-1], "name": name, "meta": {"label": label, "scopes": scope}})
    for name, label, eol in DEPRECATED_PERMISSION_GROUPS[:1]:  # its system group stays, empty
        pg_id = new_id()
        permission_groups.append({"id": pg_id, "name": name, "meta": {"label": label, "scopes": ACCOUNT_SCOPE, "deprecated": True, "eol_at": eol}})
        scim_groups.append(_virtual_group(pg_id, f"CF-{account_id} - {name}"))
    super_role = roles[names.index("Super Administrator - All Privileges")]["id"] if "Super Administrator - All Privileges" in names else roles[0]["id"]

    editable = {"key": "editable", "value": "true"}
    account_rgs = [
        {"id": new_id(), "name": f"{ACCOUNT_SCOPE}.{account_id}", "scope": _scope(account_id, "*"), "meta": editable},
        {"id": new_id(), "scope": _scope(account_id, "*"), "meta": editable},  # unnamed (an inline scope made it)
    ]
    rng.shuffle(account_rgs)
    zone_rgs = []
    for z in range(max(2, min(40, groups // 50))):
        zone_rgs.append({"id": new_id(), "scope": _scope(account_id, _zone(new_id())), "meta": editable})
        if rng.random() < 0.67:
            zone_rgs[-1]["name"] = f"zone-{z:02d}.{DOMAIN}"
    bucket_rg = {"id": new_id(), "name": "assets bucket", "scope": _scope(account_id, f"{R2_BUCKET_SCOPE}.{account_id}_default_assets"), "meta": editable}

    def random_policy():
        kind = rng.random()
        if kind < 0.45:
            pgs, rgs = [rng.choice(zone_pgs)], [rng.choice(zone_rgs)["id"]]
        elif kind < 0.9:
            pgs, rgs = [pg_of_group[rng.randrange(groups)]], [rng.choice(account_rgs)["id"]]
        else:
            pgs, rgs = [resource_pgs[0]], [bucket_rg["id"]]
        return _policy(new_id(), "deny" if rng.random() < 0.2 else "allow", pgs, rgs)

    weights = list(accumulate(1.0 / (rank + 1) for rank in range(groups)))
    member_rows, scim_users, group_only = [], [], []
    for i in range(members):
        member_id, user_id = new_id(), new_id()
        email = f"user{i:06d}@{DOMAIN}"
        policies = []
        if i == 0:
            picked, in_scim = [], False
            role_ids = [super_role]
        else:
            picked = sorted(set(rng.choices(range(groups), cum_weights=weights, k=rng.choice((1, 1, 1, 2, 2, 3)))))
            in_scim = rng.random() < 0.97
            drifted = rng.random() < 0.02
            role_ids = [role_of_group[g] for g in picked][: -1 if drifted else None]
            shape = rng.random()
            if shape < 0.03:  # several policies besides the roles, zone-scoped, some deny
                policies = [random_policy() for _ in range(rng.choice((1, 2, 3)))]
            elif shape < 0.04:  # outside SCIM, no role of their own: access only through a User Group
                picked, in_scim, role_ids = [], False, []
                group_only.append(member_id)
        member_rows.append({
            "id": member_id,
            "email": email,
            "status": "pending" if rng.random() < 0.01 else "accepted",
            "user": {"id": user_id, "email": email, "first_name": FIRST_NAMES[i % 40], "last_name": LAST_NAMES[(i // 40) % 40],
                     "two_factor_authentication_enabled": True},
            "roles": role_ids,
            "policies": policies,
        })
        if in_scim:
            scim_users.append({"id": user_id, "userName": email, "active": True, "groups": [scim_groups[g]["id"] for g in picked]})

    # User Groups: two whose names the biggest virtual groups' targets take (one Cloudflare-made and
    # granting the role on one zone only, one pushed by SCIM and locked), then teams with policies.
    user_groups = []
    for n in range(max(4, min(60, groups // 50))):
        created = f"2025-{7 + n % 5:02d}-{1 + n % 28:02d}T09:00:00Z"
        if n < 2 and n < groups:
            name = names[n]
            rgs = [rng.choice(zone_rgs)["id"]] if n == 0 else [account_rgs[0]["id"]]
            policies = [_policy(new_id(), "allow", [pg_of_group[n]], rgs)]
            locked = n == 1
        else:
            name = f"Team {n:03d}"
            policies = [random_policy() for _ in range(rng.choice((1, 1, 2, 3)))]
            policies[0]["access"] = "allow"
            locked = n == 2 or rng.random() < 0.4  # at least one locked team
        size = min(members, rng.randint(3, 150))
        group = {
            "id": new_id(),
            "name": name,
            "policies": policies,
            "members": list(dict.fromkeys(member_rows[k]["id"] for k in rng.sample(range(members), size))),
            "scim_managed": locked,
            "created_on": created,
            "modified_on": created,
        }
        if locked:
            group["externalId"] = f"00g{new_id()[:17]}"
        user_groups.append(group)
    teams = user_groups[2:] or user_groups
    for member_id in group_only:
        group = rng.choice(teams)
        if member_id not in group["members"]:
            group["members"].append(member_id)

    return {
        "account": {"id": account_id, "name": f"Generated Account {random_seed}", "type": "enterprise"},
        "permission_groups": permission_groups,
        "roles": roles,
        "members": member_rows,
        "resource_groups": account_rgs + zone_rgs + [bucket_rg],
        "user_groups": user_groups,
        "scim_groups": scim_groups,
        "scim_users": scim_users,
    }
