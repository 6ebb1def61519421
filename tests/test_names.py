import pytest

from migrate.names import VARIANTS, ParsedName, looks_like_virtual_group, parse_virtual_group_name

ID = "023e105f4ecef8ad9ca31a8372d0c353"
SUPER = "Super Administrator - All Privileges"

# (raw name, expected (account id, role, variants) or None when it must not parse)
CASES = [
    # canonical
    (f"CF-{ID} - Administrator", (ID, "Administrator", ())),
    (f"CF-{ID} - {SUPER}", (ID, SUPER, ())),
    (f"CF-{ID} - Workers Platform (Read-only)", (ID, "Workers Platform (Read-only)", ())),
    (
        f"CF-{ID} - SSL/TLS, Caching, Performance, Page Rules, and Customization",
        (ID, "SSL/TLS, Caching, Performance, Page Rules, and Customization", ()),
    ),
    (f"CF-{ID} - cloudflare workers admin", (ID, "cloudflare workers admin", ())),
    (f"CF-{ID} - {ID}", (ID, ID, ())),
    # no spaces around the separator; split on the first dash only
    (f"CF-{ID}-Administrator", (ID, "Administrator", ("no_spaces",))),
    (f"CF-{ID}-{SUPER}", (ID, SUPER, ("no_spaces",))),
    # prefix case and hex case
    (f"cf-{ID} - DNS", (ID, "DNS", ("prefix_case",))),
    (f"Cf-{ID} - DNS", (ID, "DNS", ("prefix_case",))),
    (f"cF-{ID} - DNS", (ID, "DNS", ("prefix_case",))),
    (f"CF-{ID.upper()} - DNS", (ID, "DNS", ("uppercase_hex",))),
    (f"CF-{ID[:16]}{ID[16:].upper()} - DNS", (ID, "DNS", ("uppercase_hex",))),
    # padding
    (f"  CF-{ID} - DNS  ", (ID, "DNS", ("padded",))),
    (f"CF-{ID} - DNS\n", (ID, "DNS", ("padded",))),
    (f"\u00a0CF-{ID} - DNS", (ID, "DNS", ("padded",))),
    # odd whitespace around the separator
    (f"CF-{ID}\t-\tDNS", (ID, "DNS", ("odd_whitespace",))),
    (f"CF-{ID} -\u00a0DNS", (ID, "DNS", ("odd_whitespace",))),
    (f"CF-{ID}  -  DNS", (ID, "DNS", ("odd_whitespace",))),
    (f"CF-{ID} -DNS", (ID, "DNS", ("odd_whitespace",))),
    (f"CF-{ID}- DNS", (ID, "DNS", ("odd_whitespace",))),
    (f"CF-{ID}\u2003-\u2003Analytics", (ID, "Analytics", ("odd_whitespace",))),
    # odd whitespace inside the role
    (f"CF-{ID} - Administrator  Read Only", (ID, "Administrator Read Only", ("odd_whitespace",))),
    (f"CF-{ID} - Administrator\u00a0Read Only", (ID, "Administrator Read Only", ("odd_whitespace",))),
    (f"CF-{ID} - Page Shield\u202fRead", (ID, "Page Shield Read", ("odd_whitespace",))),
    (f"CF-{ID} - Super Administrator\t-\tAll Privileges", (ID, SUPER, ("odd_whitespace",))),
    # other dashes, invisible characters
    (f"CF-{ID} \u2013 DNS", (ID, "DNS", ("odd_dash",))),
    (f"CF\u2013{ID} - DNS", (ID, "DNS", ("odd_dash",))),
    (f"CF-{ID}\u2014{SUPER}", (ID, SUPER, ("odd_dash", "no_spaces"))),
    (f"\ufeffCF-{ID} - DNS", (ID, "DNS", ("invisible_chars",))),
    (f"CF-{ID} - Admin\u200bistrator", (ID, "Administrator", ("invisible_chars",))),
    # everything at once, reported in VARIANTS order
    (
        f" cf-{ID.upper()}-Super Administrator  - All Privileges\u200b ",
        (ID, SUPER, ("padded", "invisible_chars", "prefix_case", "uppercase_hex", "no_spaces", "odd_whitespace")),
    ),
    # not virtual group names at all
    ("", None),
    ("   ", None),
    ("Engineering", None),
    ("Cloudflare-Admins", None),
    ("CF-Admins", None),
    (f"XCF-{ID} - DNS", None),
    (f"CFX-{ID} - DNS", None),
    # malformed ids: too short, too long (33 hex must not become 32 + role), not hex
    (f"CF-{ID[:-1]} - DNS", None),
    (f"CF-{ID}a - DNS", None),
    (f"CF-{ID}a-DNS", None),
    (f"CF-{ID[:-1]}g - DNS", None),
    (f"CF- {ID} - DNS", None),
    (f"CF {ID} - DNS", None),
    (f"CF{ID} - DNS", None),
    # missing separator or role
    (f"CF-{ID}", None),
    (f"CF-{ID} -", None),
    (f"CF-{ID} - ", None),
    (f"CF-{ID} - \t\u00a0", None),
    (f"CF-{ID} - \u200b", None),
    (f"CF-{ID} DNS", None),
    (f"CF-{ID}_DNS", None),
    # a doubled separator leaves a role starting with a dash: malformed, not role "- DNS"
    (f"CF-{ID} - - DNS", None),
    (f"CF-{ID}--DNS", None),
]


@pytest.mark.parametrize("raw, expected", CASES, ids=[repr(raw)[:60] for raw, _ in CASES])
def test_parse_virtual_group_name(raw, expected):
    parsed = parse_virtual_group_name(raw)
    if expected is None:
        assert parsed is None
        return
    account_id, role, variants = expected
    assert parsed == ParsedName(raw=raw, account_id=account_id, role=role, variants=variants)


@pytest.mark.parametrize("raw, expected", [c for c in CASES if c[1] is not None])
def test_canonical_form_reparses_without_variants(raw, expected):
    canonical = parse_virtual_group_name(raw).canonical
    assert canonical == f"CF-{expected[0]} - {expected[1]}"
    again = parse_virtual_group_name(canonical)
    assert (again.account_id, again.role, again.variants) == (expected[0], expected[1], ())


def test_every_parsed_name_looks_like_a_virtual_group():
    for raw, expected in CASES:
        if expected is not None:
            assert looks_like_virtual_group(raw), raw


@pytest.mark.parametrize(
    "raw, looks",
    [
        (f"CF-{ID[:-1]} - DNS", True),
        (f"CF-{ID}", True),
        (f"cf-{ID} DNS", True),
        ("CF-Admins", True),
        (f"  \ufeffcf-{ID} - DNS", True),
        (f"CF {ID} - DNS", True),
        (f"CF_{ID} - DNS", True),
        (f"CF{ID} - DNS", True),
        ("CFO Office", False),
        ("CFA Team", False),
        ("Cloudflare-Admins", False),
        ("Engineering", False),
        (f"XCF-{ID} - DNS", False),
        ("", False),
        (None, False),
    ],
)
def test_looks_like_virtual_group(raw, looks):
    assert looks_like_virtual_group(raw) is looks


def test_non_string_is_not_a_name():
    assert parse_virtual_group_name(None) is None
    assert parse_virtual_group_name(42) is None


def test_every_variant_is_explained_and_reachable():
    seen = {v for _, exp in CASES if exp for v in exp[2]}
    assert seen == set(VARIANTS)
    assert all(isinstance(text, str) and text and "\n" not in text for text in VARIANTS.values())
