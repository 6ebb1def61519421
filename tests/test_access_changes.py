"""Every change of access shows as a change, in words, in the approval report and the plan table:
a member moved by the mapping file, a member given a role they do not hold today, one who is not
an account member; a rename is a rename. Plans made by the real planner from the demo sandbox.
"""

import re
import tempfile
from pathlib import Path

import pytest

from engine_support import run
from migrate import approval, planfile
from migrate.cloudflare import CloudflareClient
from migrate.inventory import Inventory
from migrate.planner import PlanOptions, build_plan
from migrate.scan import run_scan

SSL = "SSL/TLS, Caching, Performance, Page Rules, and Customization"
HTTP_MEMBERS = {"vera.varga@acme-corp.example", "wes.weber@acme-corp.example"}  # the demo's HTTP Applications group
NOT_HELD = {"eli.eriksen@acme-corp.example", "quinn.quint@acme-corp.example", "tara.tanaka@acme-corp.example", "una.ueda@acme-corp.example"}
RENAMED = {"rosa.rossi@acme-corp.example", "sven.svensson@acme-corp.example", "umar.usman@acme-corp.example"}


def demo_plan(sandbox, mapping=None):
    with tempfile.TemporaryDirectory() as tmp:
        inventory = Inventory(Path(tmp) / "v.db")
        scan_id, _, _ = run_scan(CloudflareClient.connect(sandbox.base_url, sandbox.token, sandbox.account_id), inventory)
        plan = build_plan(inventory.load_scan(scan_id), PlanOptions(on_existing="suffix", mapping=mapping or {}), inventory.own_groups())
        inventory.close()
    return planfile.seal(plan)


@pytest.fixture
def mapped(sandbox):
    return demo_plan(sandbox, {"HTTP Applications": SSL})


def section(md, title):
    return md.split(f"## {title}")[1].split("\n## ")[0]


def first_screen(md):
    """What an approver reads before the facts table: the title and the report's opening lines."""
    return md.split("| Item | Value |")[0]


def test_a_member_moved_by_the_mapping_file_is_a_move_not_no_change(mapped):
    rows = {r["email"]: r for r in approval.access_rows(mapped)}
    for email in HTTP_MEMBERS:
        assert rows[email]["moved"] == [("HTTP Applications", SSL)] and rows[email]["change"] == "moved", rows[email]
        assert not rows[email]["lost"] and not rows[email]["gained"]
    md = approval.render(mapped, "markdown")
    move = f"move from role HTTP Applications to permission group {approval.md_text(SSL)}, chosen by the mapping file"
    assert move in section(md, "Decisions needed")
    changes = section(md, "Who loses and who gains access")
    assert "**Moves (2)**" in changes
    for email in HTTP_MEMBERS:
        assert f"- **{email}**: moves from role HTTP Applications to permission group {approval.md_text(SSL)}, chosen by the mapping file" in changes
    assert "Move to another permission group, chosen by the mapping file (2)" in first_screen(md)
    html = approval.render(mapped, "html")
    assert '<div class="side moved"><h3>Moves (2)</h3>' in html and html.count('<tr class="moved">') == 2


def test_a_mapping_that_names_the_role_it_resolves_to_anyway_is_no_move(sandbox):
    plan = demo_plan(sandbox, {"DNS": "DNS"})
    assert not any(r["moved"] for r in approval.access_rows(plan))
    assert "Moves (" not in approval.render(plan, "markdown")


def test_a_role_not_held_today_that_the_plan_grants_is_a_gain_and_a_decision(mapped):
    rows = {r["email"]: r for r in approval.access_rows(mapped)}
    for email in NOT_HELD:
        assert rows[email]["restored"] and rows[email]["change"] == "gain" and not rows[email]["before"], rows[email]
    md = approval.render(mapped, "markdown")
    decisions = section(md, "Decisions needed")
    assert "4 member(s) gain a role their virtual group lists but Cloudflare does not give them today" in decisions
    assert all(email in decisions for email in NOT_HELD)
    assert "role_not_held" not in decisions  # the same members, said once, in words
    changes = section(md, "Who loses and who gains access")
    assert "- **eli.eriksen@acme-corp.example**: gains Administrator: restores access they do not have today" in changes
    assert "Gain access (4)" in first_screen(md) and "eli.eriksen@acme-corp.example (Administrator, which they do not hold today)" in first_screen(md)


def test_a_rename_is_a_rename_and_one_who_is_no_account_member_never_had_it(mapped):
    rows = {r["email"]: r for r in approval.access_rows(mapped)}
    for email in RENAMED:
        assert rows[email]["change"] == "same" and rows[email]["renamed"] == [("Cloudflare Workers Admin", "Workers Platform Admin")]
        assert approval.change_text(rows[email]) == "no change (Cloudflare Workers Admin is now called Workers Platform Admin)"
    kim = rows["contractor.kim@acme-corp.example"]
    assert kim["change"] == "cannot" and not kim["lost"] and kim["cannot_add"] == ["DNS"]
    md = approval.render(mapped, "markdown")
    assert "- **contractor.kim@acme-corp.example**: never had DNS; cannot be added (not an account member)" in md
    assert "contractor.kim" not in md.split("**Loses")[1].split("**Moves")[0]
    assert "under Cloudflare's new name: Cloudflare Workers Admin is now called Workers Platform Admin" in first_screen(md)


@pytest.mark.parametrize("fmt", ["markdown", "html"])
def test_the_first_screen_says_who_loses_moves_and_gains_and_the_end_has_a_sign_off(mapped, fmt):
    text = approval.render(mapped, fmt)
    top = first_screen(text).replace("**", "") if fmt == "markdown" else re.sub(r"<[^>]+>", "", text.split('<table class="facts">')[0])
    for words in ("Lose access when the CF- groups are removed (0): nobody", "Move to another permission group", "Gain access (4)",
                  "Not account members: never had it, cannot be added (1)", "Everyone else"):
        assert words in top, words
    signoff = text.split("Sign-off", 1)[1]
    for field in (mapped["plan_id"], "Approver (name and role)", "Date", "Signature"):
        assert field in signoff
    assert "approve plan " + mapped["plan_id"][:12] in text


def test_decisions_are_sentences_with_any_flag_after_them(mapped):
    blocked = {**mapped, "conflicts": [{"name": "DNS", "existing_id": "f" * 32, "members": 2, "scim_managed": False}]}
    found = approval.decisions(blocked)
    assert len(found) >= 4
    for title, action, _ in found:
        assert "--" not in title and not action.startswith("-") and not action.startswith("chosen"), (title, action)
        assert len(title.split()) >= 6, title  # a sentence, not a label


def test_the_plan_table_says_who_moves_and_gains(sandbox, tmp_path):
    mapping = tmp_path / "m.toml"
    mapping.write_text(f'[roles]\n"HTTP Applications" = "{SSL}"\n')
    db = tmp_path / "v.db"
    run(sandbox, db, "scan")
    out = run(sandbox, db, "plan", "--mapping", mapping, "--on-existing", "suffix").output
    assert "Move to another permission group, chosen by the mapping file (2): vera.varga@acme-corp.example (HTTP Applications to SSL/TLS" in out
    assert "Gain access (4): eli.eriksen@acme-corp.example (Administrator, which they do not hold today)" in out
    assert "Lose access when the CF- groups are removed (0): nobody" in out
