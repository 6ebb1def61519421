"""scan and inventory, end to end against the in-process sandbox, and their bad-input paths."""

import json
import sqlite3
from pathlib import Path

import pytest

from engine_support import run
from migrate.cloudflare import CloudflareClient
from migrate.errors import VgmigrateError
from migrate.inventory import Inventory
from migrate.sandbox import Sandbox
from migrate.sandbox.seeds import demo_seed
from migrate.scan import run_scan

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def last_scan(db):
    inventory = Inventory(db)
    return inventory.load_scan(inventory.last_scan()["id"])


def test_scan_records_every_virtual_group_with_minimal_calls(sandbox, tmp_path):
    db = tmp_path / "inv.db"
    result = run(sandbox, db, "scan")
    # token, account, three pages of permission groups (101, 50 a page), and one page each:
    # members, resource groups, user groups, SCIM groups, SCIM users; then each of the 3 User
    # Groups' members. No other per-object GETs.
    assert len(sandbox.calls) == 13
    assert "13 API calls" in result.output
    data = last_scan(db)
    assert len(data["virtual_groups"]) == 8  # of 77 system groups, the 69 empty ones grant nothing and are not recorded
    groups = {g["role"]: g for g in data["virtual_groups"] if g["account_id"] == sandbox.account_id}
    assert groups["Cloudflare Workers Admin"]["permission_group_name"] == "Workers Platform Admin"
    assert groups["Cloudflare Workers Admin"]["method"] == "rename"
    assert groups["HTTP Applications"]["resolution"] == "unresolved"
    assert groups["Audit Logs Viewer"]["variants"] == ["odd_whitespace"]
    assert groups["DNS"]["variants"] == ["no_spaces"]
    assert sorted(groups["Administrator Read Only"]["variants"]) == ["prefix_case", "uppercase_hex"]
    assert [g["resolution"] for g in data["virtual_groups"] if g["account_id"] != sandbox.account_id] == ["foreign_account"]
    # Raw API JSON is kept beside the typed columns.
    assert data["members"][0]["raw"]["user"]["email"] == data["members"][0]["email"]


def test_scan_findings_cover_every_case_and_urgent_ones_come_first(sandbox, tmp_path):
    db = tmp_path / "inv.db"
    run(sandbox, db, "scan")
    findings = last_scan(db)["findings"]
    codes = {f["code"] for f in findings}
    assert {
        "role_not_held", "foreign_account", "unresolved_role", "resolved_by_rename", "name_variant",
        "not_an_account_member", "pending_invitation", "name_taken",
    } <= codes
    assert findings[0]["severity"] == "critical" and findings[0]["code"] == "role_not_held"
    lost = {f["subject"] for f in findings if f["code"] == "role_not_held"}
    # una.ueda is in the DNS virtual group but denied DNS on the shop zone.
    assert lost == {"eli.eriksen@acme-corp.example", "quinn.quint@acme-corp.example", "tara.tanaka@acme-corp.example",
                    "una.ueda@acme-corp.example"}
    assert "no_super_admin_outside_scim" not in codes  # the break-glass admin holds it directly
    assert all(f["action"] for f in findings)


def test_missing_break_glass_super_admin_is_critical(tmp_path):
    seed = demo_seed()
    seed["members"][0]["roles"] = []  # the only direct Super Administrator loses the role
    with Sandbox(seed=seed, rate_limit=None) as sandbox:
        run(sandbox, tmp_path / "inv.db", "scan")
    codes = [(f["severity"], f["code"]) for f in last_scan(tmp_path / "inv.db")["findings"]]
    assert ("critical", "no_super_admin_outside_scim") in codes


def test_inventory_shows_the_last_scan(sandbox, tmp_path):
    db = tmp_path / "inv.db"
    run(sandbox, db, "scan")
    text = run(sandbox, db, "inventory").output
    assert "Workers Platform Admin" in text and "HTTP Applications" in text and "role_not_held" in text
    data = json.loads(run(sandbox, db, "inventory", "--json").output)
    assert len(data["virtual_groups"]) == 8 and len(data["findings"]) > 5


def test_file_source_yields_the_same_records_as_scim(sandbox, tmp_path):
    run(sandbox, tmp_path / "scim.db", "scan")
    run(sandbox, tmp_path / "file.db", "scan", "--source", "file", "--file", FIXTURES / "virtual-groups.example.csv")

    def comparable(db):
        data = last_scan(db)
        names = {g["id"]: g["name"] for g in data["virtual_groups"]}
        groups = sorted((g["name"], g["role"], g["resolution"], g.get("permission_group_id")) for g in data["virtual_groups"])
        links = sorted((names[m["virtual_group_id"]], m["email"], m["member_id"]) for m in data["virtual_group_members"])
        return groups, links, sorted((f["code"], f["subject"]) for f in data["findings"])

    assert comparable(tmp_path / "scim.db") == comparable(tmp_path / "file.db")


def test_json_file_source(sandbox, tmp_path):
    member = demo_seed()["members"][7]
    export = tmp_path / "groups.json"
    export.write_text(json.dumps({"groups": [{"name": f"CF-{sandbox.account_id} - DNS", "members": [member["email"].upper(), "nobody@example.com"]}]}))
    run(sandbox, tmp_path / "inv.db", "scan", "--source", "file", "--file", export)
    data = last_scan(tmp_path / "inv.db")
    links = sorted((m["email"], m["member_id"]) for m in data["virtual_group_members"])
    assert links == [(member["email"], member["id"]), ("nobody@example.com", None)]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--token", "wrong-token", "scan"], "token"),
        (["--account", "0" * 32, "scan"], "--account"),
        (["scan", "--source", "file", "--file", "/nonexistent/x.csv"], "cannot read"),
        (["scan", "--source", "file", "--file", "{bad_csv}"], "header row"),
        (["scan", "--source", "file", "--file", "{bad_json}"], "invalid JSON"),
        (["scan", "--mapping", "{bad_toml}"], "mapping"),
    ],
)
def test_bad_input_is_one_line_and_records_nothing(sandbox, tmp_path, args, message):
    (tmp_path / "bad.csv").write_text("name,mail\nx,y\n")
    (tmp_path / "bad.json").write_text("[{")
    (tmp_path / "bad.toml").write_text("[roles\n")
    files = {"bad_csv": tmp_path / "bad.csv", "bad_json": tmp_path / "bad.json", "bad_toml": tmp_path / "bad.toml"}
    db = tmp_path / "inv.db"
    result = run(sandbox, db, *[a.format(**files) for a in args], expect=1)
    lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1 and message in lines[0], result.output
    assert "Traceback" not in result.output and sandbox.token not in result.output
    assert not db.exists() or Inventory(db).last_scan() is None


def test_unwritable_or_corrupt_or_newer_db_is_refused(sandbox, tmp_path):
    assert "cannot open" in run(sandbox, tmp_path / "missing-dir" / "inv.db", "scan", expect=1).output
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"this is not sqlite" * 100)
    assert "not a usable vgmigrate inventory" in run(sandbox, corrupt, "scan", expect=1).output
    newer = tmp_path / "newer.db"
    Inventory(newer).close()
    with sqlite3.connect(newer) as conn:
        conn.execute("insert into _sqlite_migrations (migration_set, name, applied_at) values ('vgmigrate', 'm999_future', 'x')")
    assert "newer vgmigrate" in run(sandbox, newer, "scan", expect=1).output


def test_a_failed_scan_leaves_the_previous_one_intact(sandbox, tmp_path):
    db = tmp_path / "inv.db"
    run(sandbox, db, "scan")
    first = Inventory(db).last_scan()
    sandbox.inject("GET", r"/scim/v2/Users", "5xx")
    client = CloudflareClient.connect(sandbox.base_url, sandbox.token, sandbox.account_id, max_retries=0)
    with pytest.raises(VgmigrateError):
        run_scan(client, Inventory(db))
    assert Inventory(db).last_scan() == first
    assert not list(tmp_path.glob(".vgmigrate-scan-*"))  # the staging file beside the inventory is gone


def test_a_failing_scan_stops_reading_the_scim_view_beside_it(tmp_path):
    from migrate.sandbox.seeds import generate_seed

    with Sandbox(seed=generate_seed(50, 3000), rate_limit=None, latency_ms=20) as sb:
        sb.inject("GET", r"/members$", "5xx", times=100)  # the members listing fails at once
        client = CloudflareClient.connect(sb.base_url, sb.token, sb.account_id, max_retries=0)
        with pytest.raises(VgmigrateError):
            run_scan(client, Inventory(tmp_path / "inv.db"))
        users_pages = [c for c in sb.calls if c[1].endswith("/scim/v2/Users")]
    # 30 pages of SCIM users: read to the end, the error would wait for all of them.
    assert len(users_pages) < 15, len(users_pages)


def test_staged_rows_are_recorded_whole_and_in_order_across_statements(tmp_path):
    from migrate.inventory import STAGE_BATCH

    inventory = Inventory(tmp_path / "inv.db")
    rows = [{"id": f"m{i:04d}", "email": f"u{i}@example.com", "status": "accepted", "user_id": None, "roles": "[]", "raw": f'{{"n":{i}}}'}
            for i in range(2 * STAGE_BATCH + 3)]  # two full statements and a short one
    scan_id = inventory.save_scan({"account_id": "a" * 32, "fingerprint": "f" * 64, "counts": "{}"}, {"members": iter(rows)}, [])
    stored = inventory.db.query("select id, email, status, user_id, roles, raw from members where scan_id = ? order by rowid", [scan_id])
    assert list(stored) == rows


def test_scan_progress_bar_knows_each_lists_total(sandbox, tmp_path):
    from migrate.progress import ScanProgress

    client = CloudflareClient.connect(sandbox.base_url, sandbox.token, sandbox.account_id)
    lines = []
    progress = ScanProgress(total=lambda: client.list_total, tty=True)
    original = progress.line
    progress.line = lambda: lines.append(original()) or lines[-1]
    run_scan(client, Inventory(tmp_path / "inv.db"), progress=progress)
    progress.finish()
    assert "reading members [" + "#" * 30 + "] 47/47" in lines
    assert "reading resource groups: 1" in lines  # a single unpaged call has no total


def test_the_inventory_stays_writable_while_a_scan_reads(sandbox, tmp_path):
    db = tmp_path / "inv.db"
    Inventory(db).close()
    wrote = []

    def progress(phase, n=1):
        if phase == "users" and not wrote:  # mid-scan, after the largest listing
            other = sqlite3.connect(db, timeout=0.5)
            other.execute("insert into locks (name, holder, pid, host, run_id, acquired_at) values ('probe', 'test', 1, 'h', 'r', 't')")
            other.commit()
            wrote.append(True)

    client = CloudflareClient.connect(sandbox.base_url, sandbox.token, sandbox.account_id)
    scan_id, _, _ = run_scan(client, Inventory(db), progress=progress)
    assert wrote and Inventory(db).scan(scan_id) is not None


def test_the_fingerprint_tells_every_difference_in_the_rows_and_only_those():
    from migrate.scan import FINGERPRINT_BATCH, Fingerprint

    def fingerprint(tables):
        fp = Fingerprint()
        for table, rows in tables:
            assert list(fp.rows(table, rows)) == rows  # passed on unchanged
        return fp.hexdigest()

    members = [{"id": f"m{i}", "email": f"u{i}@example.com", "raw": f'{{"n":{i}}}'} for i in range(FINGERPRINT_BATCH + 5)]
    base = [("members", members), ("virtual_groups", [{"id": "g", "name": "CF-x - DNS", "raw": None}])]
    assert fingerprint(base) == fingerprint([(t, [dict(r) for r in rows]) for t, rows in base])
    different = [
        [("members", members[:-1]), base[1]],  # a row fewer
        [("members", [*members[:-1], {**members[-1], "email": "other@example.com"}]), base[1]],
        [("members", [{**members[0], "raw": '{"n":0 }'}, *members[1:]]), base[1]],
        # the same text, cut differently between two rows' raw JSON
        [("members", [{**members[0], "raw": '{"n":0}{'}, {**members[1], "raw": '"n":1}'}, *members[2:]]), base[1]],
        [("members", members), ("virtual_groups", [{"id": "g", "name": "CF-x - DNS", "raw": ""}])],
        [("members", members), ("virtual_groups_x", base[1][1])],
    ]
    assert len({fingerprint(tables) for tables in different} | {fingerprint(base)}) == len(different) + 1
    fp = Fingerprint()
    list(fp.rows("members", []))
    with pytest.raises(ValueError, match="name order"):
        list(fp.rows("accounts", []))
