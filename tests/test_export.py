"""Audit export: content of every format, CSV round trip, scoping, the token, and the link to
Cloudflare's own audit log (against the sandbox, which records an entry per write)."""

import csv
import hashlib
import json
import sqlite3
from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner

from migrate import export, planfile
from migrate.cli import cli
from migrate.cloudflare import CloudflareClient
from migrate.errors import VgmigrateError
from migrate.inventory import Inventory
from migrate.sandbox import Sandbox
from migrate.sandbox.seeds import demo_seed

from test_approval import check_page

TABLES = ["scans", "virtual_groups", "memberships", "members", "findings", "plans", "plan_groups", "rehearsals", "runs", "journal", "access_grants"]


def run_migration(tmp, sb, rollback=True, on_existing="adopt"):
    """scan, plan, apply (and rollback) against the sandbox; returns the global CLI options."""
    base = ["--db", str(tmp / "inventory.db"), "--account", sb.account_id, "--token", sb.token, "--base-url", sb.base_url]
    steps = [["scan"], ["plan", "--out", str(tmp / "plan.json"), "--on-existing", on_existing], ["apply", str(tmp / "plan.json"), "--yes"]]
    if rollback:
        steps.append(["rollback", "--yes", "--force"])
    for args in steps:
        result = CliRunner().invoke(cli, base + args)
        assert result.exit_code == 0, (args, result.output)
    return base


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """One migration (apply, then rollback) whose sandbox stays up for audit-log reads."""
    tmp = tmp_path_factory.mktemp("export")
    with Sandbox(seed=demo_seed(), rate_limit=None) as sb:
        base = run_migration(tmp, sb)
        yield {"tmp": tmp, "sb": sb, "base": base, "plan": json.loads((tmp / "plan.json").read_text()), "db": tmp / "inventory.db"}


def invoke_export(world, out, *args):
    result = CliRunner().invoke(cli, world["base"] + ["export", "--out", str(out), *args])
    return result


def exported(world, tmp_path, fmt, *args):
    out = tmp_path / fmt
    result = invoke_export(world, out, "--format", fmt, *args)
    assert result.exit_code == 0, result.output
    return out, result.output


def all_text(folder):
    return "\n".join(p.read_text(encoding="utf-8") for p in sorted(folder.rglob("*")) if p.is_file())


def journal_rows(world):
    inventory = Inventory(world["db"])
    try:
        return list(inventory.db.query("select * from actions order by run_id, seq")), inventory.runs()
    finally:
        inventory.close()


# ---- CSV ------------------------------------------------------------------------------------------------


def test_csv_has_one_file_per_table_and_round_trips(world, tmp_path):
    out, line = exported(world, tmp_path, "csv")
    actions, _ = journal_rows(world)
    assert f"exported 2 runs, {len(actions)} journal" in line
    manifest = json.loads((out / "manifest.json").read_text())
    inventory = Inventory(world["db"])
    data = export.collect(inventory)
    inventory.close()
    for table in TABLES:
        with open(out / f"{table}.csv", newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            assert tuple(reader.fieldnames) == data.columns[table]
            back = list(reader)
        expected = [{c: "" if row[c] is None else str(row[c]) for c in data.columns[table]} for row in data.tables[table]]
        assert back == expected, table
        entry = next(f for f in manifest["files"] if f["name"] == f"{table}.csv")
        assert entry["rows"] == len(back) and entry["columns"] == list(data.columns[table])
    for entry in manifest["files"]:  # checksums hold
        assert hashlib.sha256((out / entry["name"]).read_bytes()).hexdigest() == entry["sha256"]


def test_csv_holds_every_group_member_finding_and_call(world, tmp_path):
    out, _ = exported(world, tmp_path, "csv")
    plan = world["plan"]

    def read(table):
        with open(out / f"{table}.csv", newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))

    vgs = {r["virtual_group"] for r in read("virtual_groups")}
    assert {vg["name"] for g in plan["groups"] for vg in g["virtual_groups"]} | {s["virtual_group"] for s in plan["skipped"]} <= vgs
    members = {m["email"] for g in plan["groups"] for m in g["members"]}
    assert members | {a["email"] for a in plan["access"] if a["before"]} <= {r["email"] for r in read("memberships")}
    assert members <= {r["email"] for r in read("members")}
    assert {(r["code"], r["subject"]) for r in read("findings")} == {(f["code"], f["subject"]) for f in plan["findings"]}
    assert {r["user_group"] for r in read("plan_groups")} == {g["name"] for g in plan["groups"]}
    grants = read("access_grants")
    # Everyone added, and everyone who gained the role by being in an adopted group already.
    assert {(r["email"], r["user_group"]) for r in grants} == \
        {(m["email"], g["name"]) for g in plan["groups"] for m in g["members"] + g.get("gains", [])}
    assert all(r["outcome"] == "rolled back" and r["rolled_back_at"] for r in grants)
    actions, runs = journal_rows(world)
    journal = read("journal")
    assert [(r["run_id"], int(r["seq"])) for r in sorted(journal, key=lambda r: (r["run_id"], int(r["seq"])))] == \
        [(a["run_id"], a["seq"]) for a in actions]
    for row in journal:
        assert row["method"] and row["path"].startswith("/accounts/") and row["cf_ray"] and row["http_status"] == "200"
        assert row["outcome"] in ("done", "rolled_back")
    applied = [r for r in journal if r["run_kind"] == "apply"]
    assert all(json.loads(r["inverse"])["kind"] for r in applied)  # the inverse recorded for every apply call
    assert {r["run_id"] for r in read("runs")} == {r["id"] for r in runs}
    (plan_file,) = (out / "plans").iterdir()
    assert plan_file.read_text() == (world["tmp"] / "plan.json").read_text()  # the approved file, byte for byte
    assert planfile.read(plan_file)["plan_id"] == plan["plan_id"]


# ---- JSON and JSONL ------------------------------------------------------------------------------------


def test_json_is_one_document_with_decoded_columns(world, tmp_path):
    out, _ = exported(world, tmp_path, "json")
    doc = json.loads((out / "export.json").read_text())
    assert list(doc["tables"]) == TABLES
    assert doc["export"]["account"] == {"id": world["sb"].account_id, "name": "Acme Corp"}
    first = doc["tables"]["journal"][0]
    assert isinstance(first["request"], dict) and isinstance(first["inverse"], dict)
    assert len(doc["tables"]["journal"]) == len(journal_rows(world)[0])


def test_jsonl_has_one_line_per_row(world, tmp_path):
    out, _ = exported(world, tmp_path, "jsonl")
    manifest = json.loads((out / "manifest.json").read_text())
    for table in TABLES:
        lines = (out / f"{table}.jsonl").read_text().splitlines()
        rows = [json.loads(line) for line in lines]
        assert len(rows) == next(f["rows"] for f in manifest["files"] if f["name"] == f"{table}.jsonl")
    journal = [json.loads(line) for line in (out / "journal.jsonl").read_text().splitlines()]
    assert all(isinstance(r["request"], dict) for r in journal)


# ---- Markdown and HTML summaries -------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["markdown", "html"])
def test_summary_names_every_run_call_and_grant(world, tmp_path, fmt):
    out, _ = exported(world, tmp_path, fmt)
    page = (out / ("summary.md" if fmt == "markdown" else "summary.html")).read_text()
    text = check_page(page) if fmt == "html" else page.replace("\\", "")
    actions, runs = journal_rows(world)
    for run in runs:
        assert f"Journal of {run['id']}" in text
    for action in actions:
        assert action["cf_ray"] in text
    for group in world["plan"]["groups"]:
        for member in group["members"]:
            assert member["email"] in text
    (adopted,) = [g for g in world["plan"]["groups"] if g["action"] == "adopt"]
    prior = world["plan"]["expected"]["adopted"][adopted["existing_id"]]["policies"]
    assert "rolled back at" in text and "delete_user_group" in text and f"restore_policies ({len(prior)} policies before)" in text
    assert "role_not_held" in text  # critical findings at scan time
    assert world["sb"].account_id in text


# ---- scope, refusals and the token ---------------------------------------------------------------------------


def test_run_scope_brings_its_rollback(world, tmp_path):
    _, runs = journal_rows(world)
    apply_run = next(r for r in runs if r["kind"] == "apply")
    out, _ = exported(world, tmp_path, "json", "--run", apply_run["id"])
    doc = json.loads((out / "export.json").read_text())
    assert {r["run_id"] for r in doc["tables"]["runs"]} == {r["id"] for r in runs}
    assert doc["export"]["scope"]["run"] == apply_run["id"]
    assert [s["scan_id"] for s in doc["tables"]["scans"]] == [world["plan"]["scan"]["id"]]


def test_unknown_run_and_file_as_out_are_refused(world, tmp_path):
    result = invoke_export(world, tmp_path / "x", "--run", "apply-nope")
    assert result.exit_code == 1 and "no run 'apply-nope'" in result.output and "Traceback" not in result.output
    target = tmp_path / "a-file"
    target.write_text("keep me")
    result = invoke_export(world, target)
    assert result.exit_code != 0 and target.read_text() == "keep me"
    inventory = Inventory(world["db"])
    with pytest.raises(VgmigrateError, match="is a file"):
        export.export_audit(inventory, "csv", target)
    inventory.close()


def test_export_never_contains_the_token(world, tmp_path):
    token = world["sb"].token
    # Even if a token ever reached the journal (an error message quoting a header), it is scrubbed.
    db = tmp_path / "leaky.db"
    with sqlite3.connect(world["db"]) as source, sqlite3.connect(db) as copy:
        source.backup(copy)  # the inventory is in WAL mode: copying the file alone would miss rows
    inventory = Inventory(db)
    inventory.db.execute("update actions set error = ? where seq = 1", [f"Authorization: Bearer {token}"])
    inventory.db.conn.commit()
    inventory.close()
    base = ["--db", str(db)] + world["base"][2:]
    for fmt in export.FORMATS:
        out = tmp_path / f"leak-{fmt}"
        result = CliRunner().invoke(cli, base + ["export", "--format", fmt, "--out", str(out), "--with-audit-log"])
        assert result.exit_code == 0, result.output
        text = all_text(out)
        assert token not in text, fmt
        assert token not in result.output
    assert "Bearer [redacted]" in all_text(tmp_path / "leak-csv")


# ---- Cloudflare's audit log -------------------------------------------------------------------------------------


def test_audit_log_links_every_journal_call(world, tmp_path):
    out, line = exported(world, tmp_path, "csv", "--with-audit-log")
    actions, _ = journal_rows(world)
    assert f"audit log: {len(actions)} of {len(actions)} entries linked" in line
    with open(out / "journal.csv", newline="") as f:
        journal = list(csv.DictReader(f))
    with open(out / "audit_log.csv", newline="") as f:
        audit = {r["id"]: r for r in csv.DictReader(f)}
    assert journal and all(r["audit_log_ids"] for r in journal)
    for row in journal:
        (entry_id,) = row["audit_log_ids"].split()
        entry = audit[entry_id]
        assert (entry["run_id"], entry["seq"]) == (row["run_id"], row["seq"])
        if entry["cf_ray"]:  # Audit Logs v2: the request itself
            assert entry["method"] == row["method"] and entry["path"].endswith(row["path"])
        else:  # v1 names only the object
            assert entry["resource_id"] in (row["object_id"], *row["path"].split("/"))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["audit_log"]["linked"] == manifest["audit_log"]["entries"] == len(actions)
    assert manifest["audit_log"]["unlinked_writes"] == []


def test_other_changes_in_the_window_are_shown_unlinked(tmp_path):
    with Sandbox(seed=demo_seed(), rate_limit=None) as sb:
        base = run_migration(tmp_path, sb, rollback=False)
        # Someone else changes the account while the run's window is open.
        CloudflareClient.connect(sb.base_url, sb.token, sb.account_id).create_user_group("Made by hand")
        result = CliRunner().invoke(cli, base + ["export", "--format", "markdown", "--out", str(tmp_path / "md"), "--with-audit-log"])
        assert result.exit_code == 0, result.output
    summary = (tmp_path / "md" / "summary.md").read_text()
    assert "1 made by something else in the window" in summary
    assert "not vgmigrate" in summary


# ---- linking, pure -----------------------------------------------------------------------------------------------

ACCT = "a" * 32
G1, G2 = "1" * 32, "2" * 32
T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=timezone.utc)


def at(seconds):
    return (T0 + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def write(seq, kind, method, path, object_id, start, end):
    return {"run_id": "apply-1", "seq": seq, "action": kind, "method": method, "path": path, "object_id": object_id,
            "started_at": at(start), "finished_at": at(end), "request": None}


JOURNAL = [
    write(1, "create_user_group", "POST", f"/accounts/{ACCT}/iam/user_groups", G1, 0, 1),
    write(2, "create_user_group", "POST", f"/accounts/{ACCT}/iam/user_groups", G2, 0, 1),
    write(3, "add_members", "POST", f"/accounts/{ACCT}/iam/user_groups/{G1}/members", G1, 2, 3),
]


def entry(entry_id, when, action, rtype, rid, method=None, path=None):
    e = {"id": entry_id, "when": at(when), "action": {"type": action, "result": True}, "actor": {"email": "ops@example.com"},
         "resource": {"type": rtype, "id": rid}}
    if method:
        e["metadata"] = {"method": method, "path": path}
    return e


def test_parallel_creates_link_by_resource_id():
    entries = [entry("e2", 0.6, "create", "user_group", G2, "POST", f"/client/v4/accounts/{ACCT}/iam/user_groups"),
               entry("e1", 0.5, "create", "user_group", G1, "POST", f"/client/v4/accounts/{ACCT}/iam/user_groups")]
    rows, links = export.link_audit_log(JOURNAL, entries)
    assert links == {("apply-1", 1): [("e1", "method and path and resource id")], ("apply-1", 2): [("e2", "method and path and resource id")]}
    assert [r["id"] for r in rows] == ["e1", "e2"]  # oldest first


def test_entries_without_metadata_link_by_resource_and_kind():
    # Cloudflare does not promise method and path in v1 entries: the group and member kinds tell
    # the create of G1 from the member add to G1, though both name G1.
    entries = [entry("m", 2.5, "add", "user_group_member", G1), entry("c", 0.5, "create", "user_group", G1)]
    rows, links = export.link_audit_log(JOURNAL, entries)
    assert links[("apply-1", 3)] == [("m", "resource id")]
    assert links[("apply-1", 1)] == [("c", "resource id")]


def test_unrelated_or_distant_entries_stay_unlinked():
    entries = [
        entry("far", 3600, "create", "user_group", G1, "POST", f"/accounts/{ACCT}/iam/user_groups"),
        entry("other", 0.5, "delete", "user_group", "9" * 32, "DELETE", f"/accounts/{ACCT}/iam/user_groups/{'9' * 32}"),
    ]
    rows, links = export.link_audit_log(JOURNAL, entries)
    assert links == {}
    assert all(r["run_id"] is None for r in rows)


def test_audit_window_covers_runs_with_tolerance():
    since, before = export.audit_window([{"started_at": at(0), "finished_at": at(10)}, {"started_at": at(20), "finished_at": None}],
                                        now=T0 + timedelta(seconds=30))
    assert since == T0 - export.AUDIT_TOLERANCE and before == T0 + timedelta(seconds=30) + export.AUDIT_TOLERANCE
    assert export.audit_window([]) is None


def test_an_empty_inventory_exports_headers_only(tmp_path):
    for fmt in export.FORMATS:
        result = CliRunner().invoke(cli, ["--db", str(tmp_path / "empty.db"), "export", "--format", fmt, "--out", str(tmp_path / fmt)])
        assert result.exit_code == 0, result.output
    assert (tmp_path / "csv" / "journal.csv").read_text().startswith("run_id,run_kind,seq,")
    assert "No runs recorded." in (tmp_path / "markdown" / "summary.md").read_text()
    check_page((tmp_path / "html" / "summary.html").read_text())


# ---- Audit Logs v2: linked by cf-ray, v1 when v2 is not there ----------------------------------------------


def v2_entry(entry_id, when, ray, method, path, rid, rtype="user_group"):
    return {"id": entry_id, "action": {"type": "create", "result": "success", "time": at(when)},
            "actor": {"id": "t", "type": "account", "context": "api_token"},
            "raw": {"uri": f"/client/v4{path}", "method": method, "status_code": 200, "cf_ray_id": ray},
            "resource": {"id": rid, "type": rtype, "product": "iam"}}


def test_v2_entries_link_by_cf_ray_before_anything_else():
    journal = [dict(JOURNAL[0], cf_ray="aaaa000000000001-SBX"), dict(JOURNAL[1], cf_ray="AAAA000000000002-IAD"),
               dict(JOURNAL[2], cf_ray=None)]
    entries = [
        # Same object and time as write 1, but the ray says write 2 made it: the ray wins.
        v2_entry("r2", 0.5, "aaaa000000000002", "POST", f"/accounts/{ACCT}/iam/user_groups", G1),
        v2_entry("r1", 0.5, "aaaa000000000001", "POST", f"/accounts/{ACCT}/iam/user_groups", G1),
        # The member add's response was lost (no ray journaled): resource id and path still link it.
        v2_entry("m", 2.5, "ffff000000000009", "POST", f"/accounts/{ACCT}/iam/user_groups/{G1}/members", G1, "user_group_member"),
    ]
    rows, links = export.link_audit_log(journal, entries)
    assert links[("apply-1", 1)] == [("r1", "cf-ray")] and links[("apply-1", 2)] == [("r2", "cf-ray")]
    assert links[("apply-1", 3)] == [("m", "method and path and resource id")]
    row = next(r for r in rows if r["id"] == "r1")
    assert row["cf_ray"] == "aaaa000000000001" and row["method"] == "POST" and row["path"].endswith("/iam/user_groups")


def test_v1_entries_without_a_type_link_to_the_closest_write():
    entries = [{"id": "m", "when": at(2.5), "action": {"type": "create", "result": True}, "resource": {"id": G1}},
               {"id": "c", "when": at(0.5), "action": {"type": "create", "result": True}, "resource": {"id": G1}}]
    rows, links = export.link_audit_log(JOURNAL, entries)
    assert links[("apply-1", 1)] == [("c", "resource id")] and links[("apply-1", 3)] == [("m", "resource id")]


def test_v1_entries_in_the_same_millisecond_as_two_writes_each_find_their_own():
    # A group's create recorded as finished at .048 (the journal keeps milliseconds) and its member
    # add started in that millisecond; the create's entry was made at .0487, before the create's
    # response came back, and the member add's at .0537.
    ms = 0.001
    journal = [write(3, "create_user_group", "POST", f"/accounts/{ACCT}/iam/user_groups", G1, 40 * ms, 48 * ms),
               write(4, "add_members", "POST", f"/accounts/{ACCT}/iam/user_groups/{G1}/members", G1, 48 * ms, 53 * ms)]
    entries = [{"id": "c", "when": at(48.723 * ms), "action": {"type": "create", "result": True}, "resource": {"id": G1}},
               {"id": "m", "when": at(53.762 * ms), "action": {"type": "create", "result": True}, "resource": {"id": G1}}]
    for rows, listed in ((journal, entries), (journal[::-1], entries[::-1])):
        _, links = export.link_audit_log(rows, listed)
        assert links == {("apply-1", 3): [("c", "resource id")], ("apply-1", 4): [("m", "resource id")]}


class _NoV2:
    """A client whose account has no Audit Logs v2 (or whose token may not read it)."""

    def __init__(self, client, status):
        self.client, self.status = client, status

    def audit_logs_v2(self, since, before):
        from migrate.errors import CloudflareError

        raise CloudflareError(self.status, [{"code": 10000, "message": "no"}], [], None, "GET", "/logs/audit")
        yield  # pragma: no cover

    def audit_logs(self, **kwargs):
        return self.client.audit_logs(**kwargs)


def test_export_links_every_write_by_cf_ray_and_falls_back_to_v1(tmp_path):
    with Sandbox(seed=demo_seed(), rate_limit=None) as sb:
        run_migration(tmp_path, sb, on_existing="suffix")  # no adoption: independent of how adopt writes policies
        client = CloudflareClient.connect(sb.base_url, sb.token, sb.account_id)
        inventory = Inventory(tmp_path / "inventory.db")
        try:
            v2 = export.export_audit(inventory, "csv", tmp_path / "v2",
                                     fetch_audit_log=lambda since, before: export.fetch_audit_entries(client, since, before))
            with open(tmp_path / "v2" / "journal.csv", newline="") as f:
                journal = [r for r in csv.DictReader(f) if r["method"] in export.WRITE_METHODS]
            with open(tmp_path / "v2" / "audit_log.csv", newline="") as f:
                audit = {r["id"]: r for r in csv.DictReader(f)}
            assert v2.audit["source"] == "v2" and journal and v2.audit["unlinked_writes"] == []
            assert v2.audit["linked"] == v2.audit["entries"] == len(journal)
            for row in journal:
                (entry_id,) = row["audit_log_ids"].split()
                entry = audit[entry_id]
                assert row["audit_match"] == "cf-ray" and row["cf_ray"].startswith(entry["cf_ray"] + "-")
                assert entry["method"] == row["method"] and entry["path"].endswith(row["path"])
            for status in (403, 404):
                v1 = export.export_audit(inventory, "json", tmp_path / f"v1-{status}",
                                         fetch_audit_log=lambda since, before: export.fetch_audit_entries(_NoV2(client, status), since, before))
                assert v1.audit["source"] == "v1" and v1.audit["linked"] == v1.audit["entries"] == len(journal)
                assert v1.audit["unlinked_writes"] == []
                assert {r["audit_match"] for r in v1.tables["journal"] if r["method"] in export.WRITE_METHODS} == {"resource id"}
            with pytest.raises(Exception):
                export.fetch_audit_entries(_NoV2(client, 500), None, None)
        finally:
            inventory.close()
