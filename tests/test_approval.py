"""The approval report: content, escaping, golden Markdown, and a self-contained HTML page.

Regenerate the golden files after an intended change with
`VGMIGRATE_UPDATE_GOLDEN=1 python -m pytest tests/test_approval.py` (or tests/golden/regenerate.py),
then review the diff.
"""

import copy
import importlib.util
import os
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

from migrate import approval, planfile
from migrate.cli import cli

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "fixtures" / "plan-demo.json"
GOLDEN = Path(__file__).resolve().parent / "golden"


def _regenerate_module():
    spec = importlib.util.spec_from_file_location("golden_regenerate", GOLDEN / "regenerate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def plan():
    return planfile.read(FIXTURE)  # also proves the fixture is a valid sealed plan


# ---- HTML checking helpers (shared with test_export) ------------------------------------------------

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
FORBIDDEN_TAGS = {"script", "link", "iframe", "img", "object", "embed", "frame", "audio", "video", "source", "base"}


class StrictPage(HTMLParser):
    """Parses a page, checking that tags balance and that nothing is loaded from elsewhere."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.errors, self.text, self.styles, self.tags = [], [], [], [], []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag in FORBIDDEN_TAGS:
            self.errors.append(f"forbidden tag <{tag}>")
        for name, value in attrs:
            if name in ("src", "srcset", "action", "formaction", "poster", "data") or name.startswith("on"):
                self.errors.append(f"attribute {name}={value!r} on <{tag}>")
            if name == "href" and not (value or "").startswith("#"):
                self.errors.append(f"external href {value!r}")
            if name == "style" and "url(" in (value or ""):
                self.errors.append("url() in a style attribute")
        if tag not in VOID:
            self.stack.append(tag)
        self._in_style = tag == "style"

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.stack.pop()

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unbalanced </{tag}> (open: {self.stack[-3:]})")
            return
        self.stack.pop()
        self._in_style = False

    def handle_data(self, data):
        (self.styles if self._in_style else self.text).append(data)


def check_page(page):
    """Parse a page; assert it is well formed and self-contained; return its visible text."""
    parser = StrictPage()
    parser.feed(page)
    parser.close()
    assert page.startswith("<!DOCTYPE html>")
    assert not parser.errors, parser.errors
    assert not parser.stack, f"unclosed tags: {parser.stack}"
    css = "".join(parser.styles)
    assert "url(" not in css and "@import" not in css
    assert not re.search(r"https?://", page), "the page names an external URL"
    return "".join(parser.text)


def md_cells(line):
    """Split a GFM table row on unescaped pipes."""
    return re.split(r"(?<!\\)\|", line.strip())[1:-1]


# ---- golden Markdown ---------------------------------------------------------------------------------------


def test_markdown_matches_golden_files():
    regenerate = _regenerate_module()
    if os.environ.get("VGMIGRATE_UPDATE_GOLDEN"):
        regenerate.write_golden()
    for name, text in regenerate.golden_files().items():
        expected = (GOLDEN / name).read_text(encoding="utf-8")
        assert text == expected, f"{name} differs; if intended, regenerate with VGMIGRATE_UPDATE_GOLDEN=1 and review the diff"


# ---- content -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["markdown", "html"])
def test_report_shows_every_group_member_and_finding(plan, fmt):
    out = approval.render(plan, fmt, plan_path="plan-demo.json")
    text = check_page(out) if fmt == "html" else out.replace("\\", "")
    assert plan["plan_id"] in text
    assert plan["account"]["id"] in text and plan["scan"]["fingerprint"] not in text  # facts, not internals
    for group in plan["groups"]:
        assert approval.reveal(group["name"]) in text
        assert group["permission_group"]["name"] in text
        for vg in group["virtual_groups"]:
            assert approval.reveal(vg["name"]) in text
        for member in group["members"]:
            assert member["email"] in text
    for skipped in plan["skipped"]:
        assert approval.reveal(skipped["virtual_group"]) in text
        assert skipped["reason"] in text
    for finding in plan["findings"]:
        assert approval.reveal(finding["subject"]) in text
        assert finding["message"] in text and finding["action"] in text
    for row in plan["access"]:
        assert row["email"] in text
    assert "vgmigrate --account 34c902bf18fbfbb0ab1e8f6a68c3c00b apply plan-demo.json" in text
    assert "5 to create, 1 to adopt" in text and "25 (22 distinct members)" in text
    severities = [f["severity"] for f in plan["findings"]]
    assert severities.count("critical") == 4  # the demo account's members who may have lost a role already
    assert ", ".join(f"{severities.count(s)} {s}" for s in ("critical", "error", "warning", "info")) in text
    assert "rename table" in text and "exact name" in text


def test_findings_are_worst_first(plan):
    shuffled = {**plan, "findings": list(reversed(plan["findings"]))}
    md = approval.render(shuffled, "markdown")
    section = md.split("## Findings")[1].split("##")[0]
    severities = [md_cells(line)[0].strip(" *") for line in section.splitlines() if line.startswith("| ") and "Severity" not in line]
    assert severities == sorted(severities, key=["critical", "error", "warning", "info"].index)
    assert severities[0] == "critical"


def test_access_picture_puts_losses_first_and_marks_them(plan):
    md = approval.render(plan, "markdown")
    section = md.split("## Access before and after")[1].split("\n## ")[0]
    rows = [md_cells(line) for line in section.splitlines() if line.startswith("| ") and not line.startswith("| Member")]
    losers = {a["email"] for a in plan["access"] if a["lost"]}
    assert losers, "the fixture has members who lose access"
    first = [cells[0].strip(" *").replace("\\", "") for cells in rows[: len(losers)]]
    assert set(first) == losers
    for cells in rows[: len(losers)]:
        assert "LOSES" in cells[-1] and "\u2717 loses" in "".join(cells)
    for cells in rows[len(losers):]:
        assert "LOSES" not in cells[-1]
    # contractor.kim is not an account member: never had it, so not a loss
    assert "never had DNS; cannot be added (not an account member)" in section and "contractor.kim" not in losers

    page = approval.render(plan, "html")
    lost_rows = re.findall(r'<tr class="lost">(.*?)</tr>', page.split("Access before and after")[1])
    assert len(lost_rows) == len(losers)


def test_access_picture_falls_back_to_a_list_for_many_roles(plan):
    many = copy.deepcopy(plan)
    many["access"] = [{"email": f"m{i}@example.com", "member_id": f"{i:032x}", "before": [f"Role {i}"], "after": [f"Role {i}"], "lost": []}
                      for i in range(approval.MATRIX_MAX_ROLES + 1)]
    md = approval.render(many, "markdown")
    assert "| Member | Before (virtual groups) | After (User Groups) | Change |" in md
    assert "| Member | Role 0 |" not in md


def test_gained_access_is_marked(plan):
    gained = copy.deepcopy(plan)
    gained["access"] = [{"email": "a@example.com", "member_id": "1" * 32, "before": ["DNS"], "after": ["DNS", "Billing"], "lost": []}]
    md = approval.render(gained, "markdown")
    assert "GAINS Billing" in md and "**+ gains**" in md
    # at the top, beside the losses, before anything else an approver reads
    top = md.split("## To apply")[0]
    assert "## Decisions needed" in top and "## Who loses and who gains access" in top and "Billing" in top.split("who gains access")[1]
    html = approval.render(gained, "html")
    assert '<div class="side gain"><h3>Gains (1)</h3>' in html and f'href="#{approval.member_anchor("a@example.com")}"' in html
    assert f'id="{approval.member_anchor("a@example.com")}"' in html  # the link lands on the member's row


def test_rehearsal_and_conflicts_are_stated(plan):
    assert "not rehearsed" in approval.render(plan, "markdown")
    passed = approval.render(plan, "markdown", rehearsal={"passed": True, "calls": 16, "at": "2026-01-15T09:05:00Z"})
    assert "passed against the sandbox (16 API calls) at 2026-01-15T09:05:00Z" in passed
    failed = approval.render(plan, "html", rehearsal={"passed": False, "calls": 3, "at": "x"})
    assert "FAILED against the sandbox" in failed

    blocked = copy.deepcopy(plan)
    blocked["conflicts"] = [{"name": "DNS", "existing_id": "f" * 32, "members": 2, "scim_managed": False}]
    blocked["groups"][3]["action"] = "conflict"
    md = approval.render(blocked, "markdown")
    assert "This plan cannot be applied" in md and "BLOCKED: name taken" in md
    assert "**A User Group named DNS already exists and vgmigrate did not create it (2 member(s))**" in md.split("## To apply")[0]
    assert '<tr class="lost">' in approval.render(blocked, "html")


def test_apply_command_quotes_the_plan_path(plan):
    md = approval.render(plan, "markdown", plan_path="plans/Q1 approval.json")
    assert "apply 'plans/Q1 approval.json'" in md


# ---- escaping of hostile names -----------------------------------------------------------------------------------

HOSTILE = "<script>alert(1)</script> a|b `tick` *bold* \t tab\u00a0nbsp \u202eevil"


def hostile_plan(plan):
    bad = copy.deepcopy(plan)
    group = bad["groups"][0]
    group["name"] = HOSTILE
    group["virtual_groups"][0]["name"] = "CF-" + HOSTILE
    group["members"] = [{"id": f"{i:032x}", "email": f"user{i:02d}@example.com", "status": "accepted"} for i in range(25)]
    bad["findings"][0]["subject"] = "CF-" + HOSTILE
    bad["skipped"][0]["reason"] = "<b>not bold</b> | pipe"
    return bad


def test_html_escapes_names_and_reveals_odd_characters(plan):
    page = approval.render(hostile_plan(plan), "html")
    text = check_page(page)  # no <script> survived as a tag, and the page still balances
    assert "<script>alert(1)</script>" in text  # shown as text
    assert "<b>not bold</b>" in text
    assert 'title="tab"' in page and 'title="no-break space"' in page
    assert 'title="right-to-left override"' in page
    assert "\u202e" not in page and "\t tab" not in page


def test_markdown_escapes_pipes_and_markup(plan):
    md = approval.render(hostile_plan(plan), "markdown")
    assert "\u202e" not in md and "\t" not in md
    checked = 0
    for line in md.splitlines():
        if line.startswith("| ") and ("CF-<" in line or "not bold" in line):
            header = next(h for h in md.split("\n\n") if line in h).splitlines()[0]
            assert len(md_cells(line)) == len(md_cells(header)), line
            checked += 1
    assert checked >= 3  # the group row, the finding row, the not-migrated row
    assert "\\<b\\>not bold\\</b\\> \\| pipe" in md
    assert "\u21e5" in md and "\u237d" in md and "\u27e8U+202E\u27e9" in md


def test_long_member_lists_fold_away_in_html(plan):
    page = approval.render(hostile_plan(plan), "html")
    folded = re.findall(r"<details><summary>(.*?)</summary><ul class=\"members\">(.*?)</ul></details>", page)
    assert len(folded) == 1 and "25 members" in folded[0][0]
    assert all(f"user{i:02d}@example.com" in folded[0][1] for i in range(25))
    # short lists stay open
    assert '<div><span class="name">DNS</span> <span class="muted">(7 members)</span><ul class="members">' in page


def test_many_unchanged_members_fold_into_one_table_made_row_by_row(plan):
    many = {**plan, "access": plan["access"] + [
        {"email": f"same{i:04d}@example.com", "member_id": f"m{i:04d}", "before": ["DNS"], "after": ["DNS"], "lost": [], "gained": [], "why": {}}
        for i in range(approval.FOLD_UNCHANGED_OVER + 5)]}
    page = approval.render(many, "html")
    folded = re.search(r"<details><summary>(\d+) member\(s\) keep exactly the access they have today</summary><table.*?</table></details>",
                       page, re.S)
    assert folded and int(folded.group(1)) >= approval.FOLD_UNCHANGED_OVER + 5
    assert all(f"same{i:04d}@example.com" in folded.group(0) for i in range(approval.FOLD_UNCHANGED_OVER + 5))
    check_page(page)
    markdown = approval.render(many, "markdown")
    assert all(f"| same{i:04d}@example.com |" in markdown for i in range(approval.FOLD_UNCHANGED_OVER + 5))
    for fmt, whole in (("html", page), ("markdown", markdown)):  # what the CLI writes piece by piece
        assert "".join(approval.render_chunks(many, fmt)) == whole


def test_html_is_printable(plan):
    page = approval.render(plan, "html")
    assert "@media print" in page and "break-inside: avoid" in page


def test_unknown_format_is_refused(plan):
    with pytest.raises(ValueError):
        approval.render(plan, "pdf")


def test_show_renders_the_report_from_the_command_line():
    result = CliRunner().invoke(cli, ["show", str(FIXTURE), "--format", "html"])
    assert result.exit_code == 0, result.output
    check_page(result.output.rstrip("\n") + "\n")
    assert "Migration plan for approval: Acme Corp" in result.output
