"""The virtual group name grammar: `CF-<32 hex account id> - <Role Name>`.

Cloudflare matched these names by exact string, so a name that only parses as a variant may
never have granted its role: every variant is flagged (see VARIANTS) for a human to check,
never silently normalised away. Pure functions; no I/O.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# Variant code -> one-line explanation, in the order variants are reported.
VARIANTS = {
    "padded": "leading or trailing whitespace around the name",
    "invisible_chars": "invisible characters (zero-width space, byte-order mark, direction marks) in the name",
    "prefix_case": "prefix not written 'CF-' (e.g. 'cf-' or 'Cf-')",
    "uppercase_hex": "upper-case hex digits in the account id",
    "odd_dash": "a dash other than '-' (e.g. an en dash '\u2013') after 'CF' or after the account id",
    "no_spaces": "no spaces around the dash after the account id (CF-<id>-<Role>)",
    "odd_whitespace": (
        "tabs, non-breaking or other Unicode spaces, repeated spaces, "
        "or a space on one side only of the dash after the account id"
    ),
}

# A Cloudflare id (the account's in a virtual group name, a permission group's): 32 hex digits.
HEX_ID = "[0-9a-fA-F]{32}"


def is_hex_id(text):
    """Is `text` exactly a Cloudflare id (32 hex digits, either case)?"""
    return re.fullmatch(HEX_ID, str(text)) is not None


# Hyphen-minus plus the dashes word processors and web pages substitute for it.
_DASHES = "-\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d"
_DASH = f"[{re.escape(_DASHES)}]"

# `\s` is Unicode-aware (tabs, NBSP, em spaces, ...). The separator must follow the 32 hex
# digits immediately, so a 33-digit id never parses as 32 digits plus a role.
_GRAMMAR = re.compile(
    rf"(?P<prefix>[cC][fF])(?P<dash1>{_DASH})(?P<id>{HEX_ID})"
    rf"(?P<before>\s*)(?P<dash2>{_DASH})(?P<after>\s*)(?P<role>.+)",
    re.DOTALL,
)
# A role never starts with a dash: "CF-<id> - - DNS" or "CF-<id>--DNS" is malformed, not a role "- DNS".
_ROLE_START_DASH = re.compile(_DASH)
# Something meant as a virtual group: "CF" then a dash, or "CF" then (space/underscore and) an id.
_LOOKS_LIKE = re.compile(rf"[cC][fF](?:{_DASH}|[\s_]*{HEX_ID})")


@dataclass(frozen=True)
class ParsedName:
    raw: str
    account_id: str  # 32 lower-case hex
    role: str  # whitespace normalised: every Unicode space -> " ", runs collapsed, stripped
    variants: tuple[str, ...]  # () for the canonical form

    @property
    def canonical(self) -> str:
        return f"CF-{self.account_id} - {self.role}"


def _without_invisibles(text: str) -> str:
    # Unicode "format" characters (Cf): zero-width space/joiners, BOM, bidi marks, soft hyphen.
    return "".join(ch for ch in text if unicodedata.category(ch) != "Cf")


def parse_virtual_group_name(name: str) -> ParsedName | None:
    """Parse a virtual group name; None when it is not one (see looks_like_virtual_group)."""
    if not isinstance(name, str):
        return None
    found = set()
    visible = _without_invisibles(name)
    if visible != name:
        found.add("invisible_chars")
    core = visible.strip()
    if core != visible:
        found.add("padded")
    match = _GRAMMAR.fullmatch(core)
    if match is None:
        return None
    role_text = match["role"]
    if _ROLE_START_DASH.match(role_text):
        return None
    role = " ".join(role_text.split())
    if not role:
        return None

    if match["prefix"] != "CF":
        found.add("prefix_case")
    if match["id"] != match["id"].lower():
        found.add("uppercase_hex")
    if match["dash1"] != "-" or match["dash2"] != "-":
        found.add("odd_dash")
    before, after = match["before"], match["after"]
    if before == after == "":
        found.add("no_spaces")
    elif not (before == after == " "):
        found.add("odd_whitespace")
    if role != role_text:
        found.add("odd_whitespace")

    return ParsedName(
        raw=name,
        account_id=match["id"].lower(),
        role=role,
        variants=tuple(code for code in VARIANTS if code in found),
    )


def looks_like_virtual_group(name: str) -> bool:
    """True when a name was meant as a virtual group (so failing to parse it is a finding)."""
    if not isinstance(name, str):
        return False
    return _LOOKS_LIKE.match(_without_invisibles(name).strip()) is not None


# ---- showing a name: one way in every output (tables, reports, exports, messages) ----------------

VISIBLE_CHARS = {"\t": "\u21e5", "\u00a0": "\u237d"}  # tab -> ⇥, no-break space -> ⍽


def odd_char_label(ch):
    if ch == "\t":
        return "tab"
    if ch == "\u00a0":
        return "no-break space"
    return unicodedata.name(ch, f"U+{ord(ch):04X}").lower()


def is_odd_char(ch):
    """Characters a reader cannot see or tell apart from a space: controls, format (zero-width,
    bidi overrides), and every space but the plain one."""
    return ch != " " and unicodedata.category(ch) in ("Cc", "Cf", "Zs", "Zl", "Zp", "Co", "Cn")


def reveal(text):
    """Plain-text form of a name with its odd characters shown: ⇥ for tab, ⍽ for NBSP, ⟨U+XXXX⟩ else."""
    return "".join(
        (VISIBLE_CHARS.get(ch) or f"\u27e8U+{ord(ch):04X}\u27e9") if is_odd_char(ch) else ch for ch in str(text)
    )


def quoted(name):
    """A name inside a sentence: quoted, its odd characters shown as `reveal` shows them (where
    `!r` would write a no-break space as `\\xa0` and a table as a blank)."""
    return f"'{reveal(name)}'"
