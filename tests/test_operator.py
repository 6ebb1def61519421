"""What the operator reads: findings grouped by kind, filters, names cut where they do not matter."""

from engine_support import run
from migrate.findings import Finding
from migrate.reports import findings_grouped, vg_label


def test_vg_label_cuts_the_account_id_not_the_role():
    assert vg_label("CF-34c902bf18fbfbb0ab1e8f6a68c3c00b - Super Administrator - All Privileges") == \
        "CF-34c9\u202600b - Super Administrator - All Privileges"
    assert vg_label("cf-34C902BF18FBFBB0AB1E8F6A68C3C00B-DNS") == "cf-34C9\u202600B-DNS"
    assert vg_label("ada@example.com") == "ada@example.com"


def test_findings_are_grouped_by_kind_with_counts_and_the_first_subjects():
    findings = [Finding("critical", "role_not_held", f"m{i:04d}@x", "may have lost it", "migrate it first") for i in range(997)]
    findings += [Finding("warning", "name_variant", "CF-34c902bf18fbfbb0ab1e8f6a68c3c00b-DNS", "no spaces", "check")]
    text = findings_grouped(findings)
    lines = text.splitlines()
    assert len(lines) == 4  # header, rule, one row per kind
    assert "role_not_held" in lines[2] and "997" in lines[2] and "m0000@x, m0001@x, m0002@x and 994 more" in lines[2]
    assert "name_variant" in lines[3] and "CF-34c9\u202600b-DNS" in lines[3]


def test_scan_and_inventory_show_kinds_and_list_one_kind_in_full(sandbox, tmp_path):
    db = tmp_path / "inv.db"
    scanned = run(sandbox, db, "scan").output
    assert "role_not_held" in scanned and "inventory --findings CODE" in scanned
    summary = run(sandbox, db, "inventory").output
    assert summary.count("role_not_held") == 1  # one row for the kind, however many members
    listed = run(sandbox, db, "inventory", "--findings", "role_not_held").output
    everyone = [line for line in listed.splitlines() if line.startswith("critical")]
    assert len(everyone) == 4 and "virtual group" not in listed
    assert "no finding with code" in run(sandbox, db, "inventory", "--findings", "nonesuch", expect=1).output


def test_inventory_filters_by_group_and_severity(sandbox, tmp_path):
    db = tmp_path / "inv.db"
    run(sandbox, db, "scan")
    dns = run(sandbox, db, "inventory", "--group", "dns").output
    table = dns.split("\n\n")[1]
    rows = [line for line in table.splitlines()[2:] if line.strip()]
    assert rows and all("DNS" in row for row in rows)
    warnings = run(sandbox, db, "inventory", "--severity", "warning").output
    assert "critical" not in warnings.split("severity")[-1]


def test_global_options_work_after_the_command_and_every_command_has_examples(sandbox, tmp_path):
    from click.testing import CliRunner

    from migrate.cli import cli

    db = tmp_path / "inv.db"
    args = ["--token", sandbox.token, "--account", sandbox.account_id, "--base-url", sandbox.base_url, "--db", str(db)]
    result = CliRunner().invoke(cli, ["scan", *args], env={}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert CliRunner().invoke(cli, ["status", "--db", str(db), "--account", sandbox.account_id]).output.startswith("last scan: 1")
    for name, command in cli.commands.items():
        if name == "sandbox":
            continue
        shown = CliRunner().invoke(cli, [name, "-h"])
        assert shown.exit_code == 0 and "Examples:\n    vgmigrate " + name in shown.output, name
        if name != "demo":
            assert all(opt in shown.output for opt in ("--db", "--account", "--token", "--base-url", "--debug")), name


def test_the_scans_mapping_is_remembered_by_plan_unless_overridden(sandbox, tmp_path):
    import json
    from pathlib import Path

    db, mapping, other = tmp_path / "inv.db", Path(__file__).parents[1] / "fixtures" / "mapping.example.toml", tmp_path / "other.toml"
    run(sandbox, db, "scan", "--mapping", mapping)
    plan = json.loads(run(sandbox, db, "plan", "--on-existing", "suffix", "--format", "json").output)
    migrated = {vg["role"] for g in plan["groups"] for vg in g["virtual_groups"]}
    assert "HTTP Applications" in migrated and plan["options"]["mapping"]
    other.write_text('[roles]\n"Billing" = "Billing"\n')
    plan = json.loads(run(sandbox, db, "plan", "--on-existing", "suffix", "--mapping", other, "--format", "json").output)
    assert "HTTP Applications" not in {vg["role"] for g in plan["groups"] for vg in g["virtual_groups"]}
