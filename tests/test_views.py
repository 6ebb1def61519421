"""Inventory views: created idempotently, with stable human column names, over a real migration."""

import json

import pytest
from click.testing import CliRunner

from migrate import views
from migrate.cli import cli
from migrate.inventory import Inventory
from migrate.sandbox import Sandbox
from migrate.sandbox.seeds import demo_seed


@pytest.fixture(scope="module")
def migrated(tmp_path_factory):
    """An inventory with a scan, a plan and an applied run against the demo sandbox."""
    tmp = tmp_path_factory.mktemp("views")
    db, plan_path = tmp / "inventory.db", tmp / "plan.json"
    with Sandbox(seed=demo_seed(), rate_limit=None) as sb:
        base = ["--db", str(db), "--account", sb.account_id, "--token", sb.token, "--base-url", sb.base_url]
        runner = CliRunner()
        for args in (["scan"], ["plan", "--out", str(plan_path), "--on-existing", "adopt"], ["apply", str(plan_path), "--yes"]):
            result = runner.invoke(cli, base + args)
            assert result.exit_code == 0, result.output
    inventory = Inventory(db)
    views.ensure(inventory.db)
    yield inventory, json.loads(plan_path.read_text())
    inventory.close()


def rows(inventory, view):
    return list(inventory.db.query(f"select * from [{view}]"))


def test_ensure_creates_every_view_and_is_idempotent(tmp_path):
    inventory = Inventory(tmp_path / "fresh.db")
    views.ensure(inventory.db)
    assert set(views.VIEWS) <= set(inventory.db.view_names())
    schema = {r["name"]: r["sql"] for r in inventory.db.query("select name, sql from sqlite_master where type = 'view'")}
    views.ensure(inventory.db)
    assert {r["name"]: r["sql"] for r in inventory.db.query("select name, sql from sqlite_master where type = 'view'")} == schema
    for name in views.VIEWS:
        assert rows(inventory, name) == []  # every view compiles against the real schema


def test_ensure_replaces_an_outdated_view(tmp_path):
    inventory = Inventory(tmp_path / "old.db")
    inventory.db.create_view("journal", "select 1 as old_column", replace=True)  # as an older vgmigrate left it
    views.ensure(inventory.db)
    columns = [c["name"] for c in inventory.db.query("select name from pragma_table_info('journal')")]
    assert "old_column" not in columns and "cf_ray" in columns


# The contract auditors' saved queries and the export rely on.
EXPECTED_COLUMNS = {
    "vg_overview": ["scan_id", "virtual_group", "role", "resolution", "resolved_by", "permission_group", "permission_group_id",
                    "members", "not_account_members", "name_variants", "account_id", "note", "virtual_group_id"],
    "member_access": ["scan_id", "email", "member_id", "member_status", "virtual_group", "role", "permission_group", "resolution"],
    "journal": ["run_id", "run_kind", "seq", "step", "action", "target", "method", "path", "http_status", "cf_ray", "outcome", "error",
                "object_id", "started_at", "finished_at", "undone_at", "undo_note", "request", "inverse", "response"],
    "access_grants": ["run_id", "seq", "plan_id", "granted_at", "email", "member_id", "user_group", "user_group_id", "permission_group",
                      "because_of", "outcome", "rolled_back_at"],
    "run_overview": ["run_id", "kind", "status", "plan_id", "undoes", "account_id", "started_at", "finished_at", "steps", "done",
                     "failed", "pending", "rolled_back", "message"],
}


@pytest.mark.parametrize("view", sorted(EXPECTED_COLUMNS))
def test_view_columns_are_stable(migrated, view):
    inventory, _ = migrated
    assert [c["name"] for c in inventory.db.query(f"select name from pragma_table_info('{view}')")] == EXPECTED_COLUMNS[view]


def test_vg_overview_and_member_access_tell_the_scan(migrated):
    inventory, plan = migrated
    overview = {r["virtual_group"]: r for r in rows(inventory, "vg_overview")}
    assert len(overview) == 8  # the system groups with members (empty ones grant nothing)
    workers = next(r for name, r in overview.items() if name.endswith("Cloudflare Workers Admin"))
    assert (workers["resolution"], workers["resolved_by"], workers["permission_group"]) == ("resolved", "rename", "Workers Platform Admin")
    dns = next(r for name, r in overview.items() if name.endswith("-DNS"))
    assert dns["members"] == 7 + 1 and dns["not_account_members"] == 1  # contractor.kim is no account member
    access = rows(inventory, "member_access")
    assert {a["email"] for a in plan["access"] if a["before"]} <= {r["email"] for r in access}  # gains are not virtual group members
    foreign = [r for r in access if r["virtual_group"].startswith("CF-1a2f64d6")]  # another account's group: shown, not planned
    assert foreign and all(r["resolution"] == "foreign_account" for r in foreign)
    kim = next(r for r in access if r["email"].startswith("contractor.kim"))
    assert kim["member_status"] == "not an account member" and kim["member_id"] is None


def test_findings_report_is_worst_first(migrated):
    inventory, plan = migrated
    severities = [r["severity"] for r in rows(inventory, "findings_report")]
    assert severities == [f["severity"] for f in plan["findings"] if f["code"] != "name_conflict"]
    assert severities[0] == "critical" and severities[-1] == "info"


def test_access_grants_say_who_got_what_when_and_why(migrated):
    inventory, plan = migrated
    grants = rows(inventory, "access_grants")
    added = {(m["email"], g["name"]) for g in plan["groups"] for m in g["members"]}
    # Members already in an adopted group gain its role too, and the audit trail says so.
    gains = {(m["email"], g["name"]) for g in plan["groups"] for m in g.get("gains", [])}
    assert gains and not gains & added
    assert {(r["email"], r["user_group"]) for r in grants} == added | gains
    for r in grants:
        assert r["outcome"] == "granted" and r["granted_at"] and r["plan_id"] == plan["plan_id"]
        group = next(g for g in plan["groups"] if g["name"] == r["user_group"])
        if (r["email"], r["user_group"]) in gains:
            assert r["because_of"] == "already in the adopted User Group"
        else:
            assert r["because_of"].split("\n") == [vg["name"] for vg in group["virtual_groups"]]
        assert r["permission_group"] == group["permission_group"]["name"]


def test_journal_and_runs_match_the_actions(migrated):
    inventory, plan = migrated
    journal = rows(inventory, "journal")
    (run,) = rows(inventory, "run_overview")
    assert len(journal) == len(plan["steps"]) == run["steps"] == run["done"]
    assert {r["step"] for r in journal} == {s["id"] for s in plan["steps"]}
    assert all(r["cf_ray"] and r["http_status"] == 200 and r["outcome"] == "done" for r in journal)
    (overview,) = rows(inventory, "plan_overview")
    assert (overview["plan_id"], overview["user_groups"], overview["apply_runs"]) == (plan["plan_id"], len(plan["groups"]), 1)
    adopted = [r for r in rows(inventory, "user_group_overview") if r["user_group"] == "Administrator Read Only"]
    assert adopted and adopted[0]["managed_by_vgmigrate"] == 1


def test_plan_bodies_are_canonical_json_and_older_text_bodies_read_the_same(migrated, tmp_path):
    import sqlite3

    from migrate.export import collect
    from migrate.inventory import dumps

    inventory, plan = migrated
    (stored,) = list(inventory.db.query("select typeof(body) as type, body from plans"))
    assert stored["type"] == "blob" and stored["body"] == dumps(plan).encode()  # save_plan: bytes, not TEXT
    copy = tmp_path / "older.db"
    with sqlite3.connect(copy) as target:
        inventory.db.conn.backup(target)
    older = Inventory(copy)
    with older.transaction() as db:
        db.execute("update plans set body = cast(body as text)")  # as vgmigrate wrote it before
    assert next(older.db.query("select typeof(body) as type from plans"))["type"] == "text"
    for view in ("plan_overview", "plan_groups", "access_grants"):
        assert rows(older, view) == rows(inventory, view) and rows(inventory, view)
    assert older.plan_body(plan["plan_id"]) == inventory.plan_body(plan["plan_id"]) == plan
    assert collect(older).plans == collect(inventory).plans == {plan["plan_id"]: dumps(plan)}
    older.close()
