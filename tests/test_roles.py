from pathlib import Path

import pytest

from migrate.errors import VgmigrateError
from migrate.iam import name_key
from migrate.roles import (
    ACCOUNT_SCOPE,
    RENAMES,
    Resolution,
    role_resolver,
    is_account_scoped,
    is_deprecated,
    load_mapping,
    resolve_role,
)

ZONE_SCOPE = "com.cloudflare.api.account.zone"
EXAMPLE_MAPPING = Path(__file__).resolve().parents[1] / "fixtures" / "mapping.example.toml"


def pg(n, name, scopes=ACCOUNT_SCOPE, **meta):
    return {"id": f"{n:032x}", "name": name, "meta": {"label": f"label_{n}", "scopes": scopes, **meta}}


# Shaped like GET /accounts/{id}/iam/permission_groups results.
GROUPS = [
    pg(1, "Administrator"),
    pg(2, "Super Administrator - All Privileges"),
    pg(3, "Administrator Read Only"),
    pg(4, "DNS"),
    pg(5, "Workers Platform Admin"),
    pg(6, "Hyperdrive Read"),
    pg(7, "Vectorize Read only"),
    pg(8, "Bot Management (Account-Wide)"),
    pg(9, "Network Services Write (Magic)"),
    pg(10, "Network Services Read (Magic)"),
    pg(11, "Zaraz Read"),
    pg(12, "Page Shield Read"),
    pg(13, "Trust and Safety"),
    pg(14, "Minimal Account Access"),
    pg(15, "Domain DNS", ZONE_SCOPE),
    pg(16, "Cloudflare Images", deprecated=True),
    pg(17, "Log Share"),
    pg(18, "Log Share"),
    pg(19, "Cache Purge"),
    pg(20, "Cache purge"),
    pg(21, "Billing", [ACCOUNT_SCOPE]),
    pg(22, "Firewall", [ACCOUNT_SCOPE, ZONE_SCOPE]),
    pg(23, "Analytics", deprecated="false"),
    pg(24, "Page Shield", ZONE_SCOPE),
    pg(25, "Page Shield", deprecated="true"),
    pg(26, "Domain Page Shield", ZONE_SCOPE),
    pg(27, "Zone Versioning (Account-Wide)", deprecated="2026-01-01"),
    pg(28, "Cloudflare Workers Admin", deprecated=True),
    pg(29, "Load Balancer", ["com.cloudflare.api.account.zone"]),
]


def gid(n):
    return f"{n:032x}"


@pytest.mark.parametrize(
    "role, status, method, chosen, in_message",
    [
        # exact, and exact beats a normalised near-twin
        ("Administrator", "resolved", "exact", 1, 'resolved by exact name to "Administrator"'),
        ("Super Administrator - All Privileges", "resolved", "exact", 2, "by exact name"),
        ("Cache Purge", "resolved", "exact", 19, "by exact name"),
        # normalised: case, whitespace, NBSP
        ("administrator read only", "resolved", "normalised", 3, "ignoring case and whitespace"),
        ("ADMINISTRATOR READ ONLY", "resolved", "normalised", 3, "ignoring case and whitespace"),
        # the role's own whitespace is normalised first, as in ParsedName.role (names.py flags it)
        ("Administrator\u00a0 Read  Only", "resolved", "exact", 3, 'resolved by exact name'),
        ("PAge Shield Read", "resolved", "normalised", 12, "ignoring case"),
        ("Trust And Safety", "resolved", "normalised", 13, "ignoring case"),
        ("Bot Management (Account-wide)", "resolved", "normalised", 8, "ignoring case"),
        # known renames
        ("Cloudflare Workers Admin", "resolved", "rename", 5, 'via its known rename to "Workers Platform Admin"'),
        ("cloudflare workers admin", "resolved", "rename", 5, "via its known rename"),
        ("Workers Admin", "resolved", "rename", 5, "via its known rename"),
        ("Hyperdrive Readonly", "resolved", "rename", 6, "via its known rename"),
        ("Vectorize Readonly", "resolved", "rename", 7, "via its known rename"),
        ("Super Administrator (All Privileges)", "resolved", "rename", 2, "via its known rename"),
        ("Network Services (Magic)", "resolved", "rename", 9, "via its known rename"),
        ("Network Services (Magic, Read-Only)", "resolved", "rename", 10, "via its known rename"),
        ("Zaraz Readonly", "resolved", "rename", 11, "via its known rename"),
        # rename target matched normalised ("Account-wide" vs "Account-Wide")
        ("Bot Management", "resolved", "rename", 8, 'via its known rename to "Bot Management (Account-Wide)"'),
        # scopes as a list
        ("Billing", "resolved", "exact", 21, "by exact name"),
        ("Firewall", "resolved", "exact", 22, "by exact name"),
        ("Analytics", "resolved", "exact", 23, "by exact name"),
        # nothing to find
        ("HTTP Applications", "unresolved", None, None,
         'no account-scoped permission group named "HTTP Applications"; add it to a mapping file (--mapping)'),
        ("HTTP Applications", "unresolved", None, None, "retired"),
        ("Super Administrator", "unresolved", None, None, "Minimal Account Access"),
        ("Hyperdrive Admin", "unresolved", None, None, 'named "Hyperdrive Admin"'),
        ("", "unresolved", None, None, "empty role name"),
        # never chosen silently: domain-scoped, deprecated
        ("Domain DNS", "unresolved", None, None, "is not account-scoped (scopes: com.cloudflare.api.account.zone)"),
        ("domain dns", "unresolved", None, None, "is not account-scoped"),
        ("Load Balancer", "unresolved", None, None, "is not account-scoped"),
        ("Cloudflare Images", "unresolved", None, None, f'"Cloudflare Images" ({gid(16)}) is deprecated'),
        ("Zone Versioning (Account-Wide)", "unresolved", None, None, "is deprecated"),
        ("Page Shield", "unresolved", None, None, "is not account-scoped"),
        ("Page Shield", "unresolved", None, None, f"({gid(25)}) is deprecated"),
        # ambiguity: same step, more than one candidate
        ("Log Share", "ambiguous", None, None, "2 account-scoped permission groups match \"Log Share\""),
        ("CACHE PURGE", "ambiguous", None, None, "pick one by id in a mapping file"),
    ],
)
def test_resolve_role(role, status, method, chosen, in_message):
    res = resolve_role(role, GROUPS)
    assert role_resolver(GROUPS)(role) == res  # the indexed resolver used for many roles agrees
    assert (res.status, res.method) == (status, method)
    assert res.permission_group == (None if chosen is None else GROUPS[chosen - 1])
    assert in_message in res.message
    assert "\n" not in res.message
    assert res.resolved is (status == "resolved")


def test_ambiguous_lists_every_candidate():
    res = resolve_role("cache purge", GROUPS)
    assert [c["id"] for c in res.candidates] == [gid(19), gid(20)]
    assert gid(19) in res.message and gid(20) in res.message
    assert resolve_role("Log Share", GROUPS).candidates == (GROUPS[16], GROUPS[17])


def test_resolved_and_unresolved_have_no_candidates():
    assert resolve_role("DNS", GROUPS).candidates == ()
    assert resolve_role("Domain DNS", GROUPS).candidates == ()


def test_the_same_group_listed_twice_is_not_ambiguous():
    res = resolve_role("DNS", GROUPS + [dict(GROUPS[3])])
    assert (res.status, res.permission_group["id"]) == ("resolved", gid(4))


def test_rename_prefers_current_group_over_a_deprecated_old_one():
    # "Cloudflare Workers Admin" exists but is deprecated: the rename to the current group wins.
    res = resolve_role("Cloudflare Workers Admin", GROUPS)
    assert res.permission_group["id"] == gid(5)


def test_rename_target_missing_says_both_names():
    groups = [g for g in GROUPS if g["name"] not in ("Workers Platform Admin",)]
    res = resolve_role("Cloudflare Workers Admin", groups)
    assert res.status == "unresolved"
    assert '"Cloudflare Workers Admin" or its current name "Workers Platform Admin"' in res.message
    assert "is deprecated" in res.message


def test_a_real_group_named_super_administrator_resolves_exactly():
    res = resolve_role("Super Administrator", GROUPS + [pg(40, "Super Administrator")])
    assert (res.status, res.method, res.permission_group["id"]) == ("resolved", "exact", gid(40))


M = "mapping"
MAPPING_CASES = [
    # by name, by id (any case), keys compared normalised
    ({"HTTP Applications": "Firewall"}, "HTTP Applications", "resolved", M, 22, 'resolved by the mapping file to "Firewall"'),
    ({"http  applications": "Firewall"}, "HTTP Applications", "resolved", M, 22, "by the mapping file"),
    ({"HTTP Applications": gid(4)}, "HTTP Applications", "resolved", M, 4, "by the mapping file"),
    ({"HTTP Applications": gid(4).upper()}, "HTTP Applications", "resolved", M, 4, "by the mapping file"),
    ({"HTTP Applications": "firewall"}, "HTTP Applications", "resolved", M, 22, "by the mapping file"),
    # the mapping overrides even an exact match
    ({"Administrator": "Administrator Read Only"}, "Administrator", "resolved", M, 3, "by the mapping file"),
    ({"Super Administrator": "Minimal Account Access"}, "Super Administrator", "resolved", M, 14, "mapping"),
    # a mapping entry for another role changes nothing
    ({"Billing": "DNS"}, "Administrator", "resolved", "exact", 1, "by exact name"),
    # bad targets: unresolved, never a fallback to automatic matching
    ({"Administrator": "No Such Group"}, "Administrator", "unresolved", None, None, "no permission group has that name"),
    ({"Administrator": "05784afa1b2c3d4e5f60718293a4b5c6"}, "Administrator", "unresolved", None, None,
     "legacy role ids from GET /roles are not permission group ids"),
    ({"DNS": "Domain DNS"}, "DNS", "unresolved", None, None, "is not account-scoped"),
    ({"DNS": gid(15)}, "DNS", "unresolved", None, None, "is not account-scoped"),
    ({"Images": "Cloudflare Images"}, "Images", "unresolved", None, None, "is deprecated"),
    ({"Images": gid(16)}, "Images", "unresolved", None, None, "is deprecated"),
    # a mapping to a name shared by several groups: eligibility decides, or it stays ambiguous
    ({"PS": "Page Shield"}, "PS", "unresolved", None, None, "is not account-scoped"),
    ({"LS": "Log Share"}, "LS", "ambiguous", None, None, 'match "LS" (mapped to "Log Share")'),
    # keys that only differ in case: an exact key wins, otherwise disagreeing values are refused
    ({"admin": "DNS", "ADMIN": "Billing"}, "Admin", "unresolved", None, None, "conflicting entries"),
    ({"Admin": "DNS", "ADMIN": "Billing"}, "Admin", "resolved", M, 4, "by the mapping file"),
]


@pytest.mark.parametrize("mapping, role, status, method, chosen, in_message", MAPPING_CASES)
def test_resolve_role_with_mapping(mapping, role, status, method, chosen, in_message):
    res = resolve_role(role, GROUPS, mapping)
    assert role_resolver(GROUPS, mapping)(role) == res
    assert (res.status, res.method) == (status, method)
    assert res.permission_group == (None if chosen is None else GROUPS[chosen - 1])
    assert in_message in res.message


@pytest.mark.parametrize(
    "pg_, scoped",
    [
        (pg(1, "x"), True),
        (pg(1, "x", [ACCOUNT_SCOPE]), True),
        (pg(1, "x", [ACCOUNT_SCOPE, ZONE_SCOPE]), True),
        (pg(1, "x", f" {ACCOUNT_SCOPE} "), True),
        (pg(1, "x", ZONE_SCOPE), False),
        (pg(1, "x", [ZONE_SCOPE]), False),
        (pg(1, "x", []), False),
        (pg(1, "x", None), False),
        (pg(1, "x", "com.cloudflare.api.account.zone.abc"), False),
        ({"id": "x", "name": "x"}, False),
        ({"id": "x", "name": "x", "meta": None}, False),
    ],
)
def test_is_account_scoped(pg_, scoped):
    assert is_account_scoped(pg_) is scoped


@pytest.mark.parametrize(
    "flag, deprecated",
    [
        (True, True), ("true", True), ("True", True), ("1", True), ("2026-01-01", True),
        (False, False), ("false", False), ("FALSE", False), ("", False), ("0", False), (None, False),
    ],
)
def test_is_deprecated(flag, deprecated):
    assert is_deprecated(pg(1, "x", deprecated=flag)) is deprecated


def test_is_deprecated_without_meta():
    assert is_deprecated({"id": "x", "name": "x"}) is False


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Administrator Read Only", "administrator read only"),
        ("  Administrator\u00a0\tRead   Only ", "administrator read only"),
        ("Page\u2009Shield\u200bRead", "page shieldread"),
        ("STRASSE", "strasse"),
        ("Straße", "strasse"),
        (None, ""),
    ],
)
def test_name_key(text, expected):
    assert name_key(text) == expected


def test_rename_table_has_no_dead_or_forbidden_entries():
    keys = {name_key(k) for k in RENAMES}
    # Entries that normalise to their target would never be reached (the normalised step runs first).
    assert all(name_key(old) != name_key(new) for old, new in RENAMES.items())
    assert "super administrator" not in keys
    assert "http applications" not in keys and "http applications read" not in keys
    # Every target exists among the current roles (SEMANTICS.md 2.1 names used in GROUPS).
    current = {name_key(g["name"]) for g in GROUPS}
    assert {name_key(new) for new in RENAMES.values()} <= current


def test_resolution_is_immutable():
    res = resolve_role("DNS", GROUPS)
    assert isinstance(res, Resolution)
    with pytest.raises(AttributeError):
        res.status = "unresolved"


# --- load_mapping -------------------------------------------------------------------------


def write(tmp_path, text, name="mapping.toml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_load_mapping_reads_the_roles_table(tmp_path):
    path = write(tmp_path, f'# comment\n[roles]\n"HTTP Applications" = "Firewall"\nDNS = "  {gid(4)} "\n')
    assert load_mapping(path) == {"HTTP Applications": "Firewall", "DNS": gid(4)}
    assert load_mapping(str(path)) == load_mapping(path)


def test_load_mapping_allows_an_empty_roles_table(tmp_path):
    assert load_mapping(write(tmp_path, "[roles]\n")) == {}


def test_example_mapping_loads_and_resolves():
    mapping = load_mapping(EXAMPLE_MAPPING)
    assert mapping["Super Administrator"] == "Minimal Account Access"
    assert resolve_role("Super Administrator", GROUPS, mapping).permission_group["id"] == gid(14)


@pytest.mark.parametrize(
    "text, in_message",
    [
        ('[roles]\n"HTTP Applications" = Firewall\n', "line 2"),
        ('[roles]\nHTTP Applications = "Firewall"\n', "not valid TOML"),
        ('[roles]\n"A" = "x"\n"A" = "y"\n', "not valid TOML"),
        ('[roles]\n\n"Administrator" = 5\n', 'line 3 [roles] "Administrator" must be a string'),
        ('[roles]\n"Administrator" = ["DNS"]\n', "not list"),
        ('[roles]\n"Administrator" = true\n', "not bool"),
        ('[roles]\nSSL.TLS = "DNS"\n', 'line 2 [roles] "SSL" is a table, not a string; quote role names that contain dots'),
        ('[roles]\n"Administrator" = "  "\n', '"Administrator" is empty'),
        ('[roles]\n"  " = "DNS"\n', "the role name is empty"),
        ('[roles]\n"Admin" = "DNS"\n"admin" = "Billing"\n', 'line 3 [roles] "admin" conflicts with "Admin"'),
        ('"Administrator" = "DNS"\n', "unexpected top-level key(s) Administrator; put every entry under [roles]"),
        ('[role]\n"Administrator" = "DNS"\n', "unexpected top-level key(s) role"),
        ("", "has no [roles] table"),
        ('roles = "DNS"\n', "has no [roles] table"),
    ],
)
def test_load_mapping_rejects_bad_files(tmp_path, text, in_message):
    path = write(tmp_path, text)
    with pytest.raises(VgmigrateError) as caught:
        load_mapping(path)
    message = str(caught.value)
    assert in_message in message
    assert str(path) in message
    assert "\n" not in message


def test_load_mapping_accepts_duplicate_spellings_that_agree(tmp_path):
    path = write(tmp_path, '[roles]\n"Admin" = "DNS"\n"ADMIN" = "DNS"\n')
    assert load_mapping(path) == {"Admin": "DNS", "ADMIN": "DNS"}


def test_load_mapping_missing_file(tmp_path):
    with pytest.raises(VgmigrateError, match=r"cannot read mapping file .*nope\.toml: No such file"):
        load_mapping(tmp_path / "nope.toml")


def test_load_mapping_directory(tmp_path):
    with pytest.raises(VgmigrateError, match="cannot read mapping file"):
        load_mapping(tmp_path)


def test_load_mapping_not_utf8(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes('[roles]\n"Caf\u00e9" = "DNS"\n'.encode("latin-1"))
    with pytest.raises(VgmigrateError, match="is not UTF-8 text"):
        load_mapping(path)
