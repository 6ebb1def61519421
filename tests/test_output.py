"""One output flag everywhere, progress on every long command, clear messages, and `status` that
knows the whole migration: scan, plan, rehearsal, runs and verify."""

import json
import time

import pytest
from click.testing import CliRunner

from engine_support import client_for, env_for, iam_state, open_inventory, writes
from migrate.cli import cli
from migrate.cloudflare import CloudflareClient
from migrate.progress import StepProgress
from migrate.reports import to_json

DATA_COMMANDS = ("scan", "inventory", "plan", "show", "apply", "verify", "rollback", "status", "history", "export")


def vg(sb, db, *args, expect=0, progress=None, **kwargs):
    env = env_for(sb, db)
    if progress is not None:
        env["VGMIGRATE_PROGRESS_SECONDS"] = str(progress)
    result = CliRunner().invoke(cli, [str(a) for a in args], env=env, catch_exceptions=False, **kwargs)
    assert result.exit_code == expect, f"{args} exited {result.exit_code}:\n{result.output}"
    return result


def stable_json(result):
    """stdout is one JSON document and nothing else, with sorted keys (the documented form)."""
    data = json.loads(result.stdout)
    assert result.stdout == to_json(data) + "\n"
    return data


@pytest.fixture
def planned(sandbox, tmp_path):
    db, plan = tmp_path / "inv.db", tmp_path / "plan.json"
    vg(sandbox, db, "scan")
    vg(sandbox, db, "plan", "--out", plan, "--on-existing", "suffix")
    return db, plan


# ---- --format table|json, and --json --------------------------------------------------------------


@pytest.mark.parametrize("name", DATA_COMMANDS)
def test_every_command_that_prints_data_has_format_json_and_the_json_alias(name):
    shown = CliRunner().invoke(cli, [name, "-h"]).output
    assert "--format" in shown and "--json" in shown and "json" in shown.split("--format", 1)[1].split("\n")[0] + shown


def test_json_output_of_the_whole_migration_is_stable_and_alone_on_stdout(sandbox, tmp_path):
    db, plan = tmp_path / "inv.db", tmp_path / "plan.json"
    scanned = stable_json(vg(sandbox, db, "scan", "--json"))
    assert scanned["scan"] == 1 and scanned["counts"]["virtual_groups"] and scanned["findings"][0]["code"]
    assert set(scanned["findings"][0]) == {"severity", "code", "subject", "message", "action"}
    assert "reading" in vg(sandbox, db, "scan", "--format", "json").stderr  # progress: stderr only
    listed = stable_json(vg(sandbox, db, "inventory", "--format", "json", "--severity", "critical"))
    assert listed["findings"] and {f["severity"] for f in listed["findings"]} == {"critical"}
    assert stable_json(vg(sandbox, db, "inventory", "--json"))["virtual_groups"]
    vg(sandbox, db, "plan", "--out", plan, "--on-existing", "suffix")
    assert stable_json(vg(sandbox, db, "plan", "--on-existing", "suffix", "--json"))["steps"]
    assert stable_json(vg(sandbox, db, "show", plan, "--json"))["plan_id"] == json.loads(plan.read_text())["plan_id"]
    assert vg(sandbox, db, "show", plan, "--json").stdout == plan.read_text()  # the plan file, byte for byte

    applied = stable_json(vg(sandbox, db, "apply", plan, "--yes", "--json", progress=0))
    assert applied["status"] == "done" and applied["run"].startswith("apply-") and applied["counts"]["done"] == len(json.loads(plan.read_text())["steps"])
    assert set(applied) == {"run", "status", "counts", "api_calls", "seconds", "message", "plan"}
    verified = stable_json(vg(sandbox, db, "verify", "--format", "json", progress=0))
    assert verified["run"] == applied["run"] and verified["differences"] == [] and verified["counts"]["differences"] == 0
    status = stable_json(vg(sandbox, db, "status", "--json"))
    assert status["stage"] == "verified" and status["verification"]["differences"] == 0 and "vgmigrate cutover" in status["next"]
    history = stable_json(vg(sandbox, db, "history", "--format", "json"))
    assert [r["id"] for r in history["runs"]] == [applied["run"]] and history["runs"][0]["steps"] == {"done": applied["counts"]["done"]}
    exported = stable_json(vg(sandbox, db, "export", "--json", "--out", tmp_path / "audit"))
    assert "export.json" in exported["files"] and (tmp_path / "audit" / "export.json").exists()

    preview = stable_json(vg(sandbox, db, "rollback", "--dry-run", "--json"))
    assert preview["dry_run"] is True and preview["undoes"] == applied["run"] and any("delete User Group" in a for a in preview["actions"])
    undone = stable_json(vg(sandbox, db, "rollback", "--yes", "--format", "json"))
    assert undone["status"] == "rolled_back" and undone["dry_run"] is False and undone["actions"] == preview["actions"]
    again = stable_json(vg(sandbox, db, "rollback", "--yes", "--json"))
    assert again["status"] == "nothing_to_do"


# ---- progress -----------------------------------------------------------------------------------


def progress_lines(text, label):
    import re

    lines = [line for line in text.splitlines() if line.startswith(label + ": ")]
    counts = [tuple(int(n.replace(",", "")) for n in re.search(r"([\d,]+)/([\d,]+)", line).groups()) for line in lines]
    assert all(done <= total for done, total in counts), lines
    return counts


def test_apply_verify_and_rollback_print_progress_lines_when_not_a_terminal(sandbox, planned):
    db, plan = planned
    steps = len(json.loads(plan.read_text())["steps"])
    applied = vg(sandbox, db, "apply", plan, "--yes", progress=0)
    counts = progress_lines(applied.stderr, "applying")
    assert counts[-1] == (steps, steps) and len(counts) >= steps and "applying:" not in applied.stdout
    verified = vg(sandbox, db, "verify", progress=0)
    assert progress_lines(verified.stderr, "verifying")[-1][0] == progress_lines(verified.stderr, "verifying")[-1][1] > 0
    dry = vg(sandbox, db, "rollback", "--dry-run", progress=0)
    assert progress_lines(dry.stderr, "checking") and "checking" not in dry.stdout
    undone = vg(sandbox, db, "rollback", "--yes", progress=0)
    assert progress_lines(undone.stderr, "rolling back")[-1][0] > 0


def test_a_quick_command_prints_no_progress_with_the_default_interval(sandbox, planned):
    db, plan = planned
    assert "applying:" not in vg(sandbox, db, "apply", plan, "--yes").stderr


def test_progress_lines_keep_coming_while_nothing_finishes(capsys):
    with StepProgress("verifying", 10, "User Groups", tty=False, every=0.05) as bar:
        time.sleep(0.3)  # e.g. a rate-limit wait: no update, and still a line every interval
        bar.update(10)
    lines = capsys.readouterr().err.splitlines()
    assert lines.count("verifying: 0/10 User Groups") >= 2 and lines[-1] == "verifying: 10/10 User Groups"


def test_a_resumed_apply_counts_the_steps_already_done_once(sandbox, planned, monkeypatch):
    db, plan = planned
    steps = len(json.loads(plan.read_text())["steps"])
    original, seen = CloudflareClient.add_user_group_members, []

    def interrupted(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        seen.append(args)
        if len(seen) == 2:
            raise KeyboardInterrupt
        return result

    with monkeypatch.context() as m:
        m.setattr(CloudflareClient, "add_user_group_members", interrupted)
        vg(sandbox, db, "apply", plan, "--yes", "--parallel", "1", expect=130)
    done = sum(1 for r in open_inventory(db).runs("apply") for a in open_inventory(db).actions(r["id"]) if a["status"] == "done")
    assert 0 < done < steps
    resumed = progress_lines(vg(sandbox, db, "apply", plan, "--yes", progress=0).stderr, "applying")
    assert resumed[0][0] > done and resumed[-1] == (steps, steps)  # started from the done steps, never past the total
    assert len(resumed) <= steps - done + 1


# ---- messages -----------------------------------------------------------------------------------


def test_no_scan_recorded_names_the_inventory_and_says_it_was_just_created(sandbox, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = {**env_for(sandbox, "x"), "VGMIGRATE_DB": None}
    created = CliRunner().invoke(cli, ["plan"], env=env)
    assert created.exit_code == 1
    line = created.stderr.strip()
    assert str(tmp_path / "vgmigrate.db") in line and "just created empty" in line and "--db" in line and "\n" not in line
    again = CliRunner().invoke(cli, ["inventory"], env=env)  # it exists now: only where it is
    assert again.exit_code == 1 and str(tmp_path / "vgmigrate.db") in again.stderr and "just created" not in again.stderr
    status = CliRunner().invoke(cli, ["status"], env=env)
    assert str(tmp_path / "vgmigrate.db") in status.output and "Next: vgmigrate scan" in status.output


@pytest.mark.parametrize("command", [["apply", "{plan}"], ["rollback"]])
def test_apply_and_rollback_without_a_terminal_or_yes_say_to_pass_yes(sandbox, planned, command):
    db, plan = planned
    if command[0] == "rollback":
        vg(sandbox, db, "apply", plan, "--yes")
    state, sandbox_calls = iam_state(sandbox), len(sandbox.calls)
    result = vg(sandbox, db, *[a.format(plan=plan) for a in command], expect=1)
    assert result.stdout == "" and result.stderr.count("\n") == 1 and "pass --yes" in result.stderr
    assert "Aborted" not in result.output and iam_state(sandbox) == state and len(sandbox.calls) == sandbox_calls


def test_verify_before_any_apply_says_so_and_what_to_do(sandbox, planned):
    db, _ = planned
    result = vg(sandbox, db, "verify", expect=1)
    assert "no plan has been applied" in result.stderr and "vgmigrate apply plan.json" in result.stderr
    assert result.stderr.count("\n") == 1


def test_rollback_under_a_held_lock_refuses_before_any_preview(sandbox, planned):
    db, plan = planned
    vg(sandbox, db, "apply", plan, "--yes")
    open_inventory(db).acquire_lock("migration", "apply-elsewhere")  # this process: alive
    sandbox.reset_calls()
    result = vg(sandbox, db, "rollback", "--yes", expect=1)
    assert "locked by" in result.stderr and "would" not in result.output and result.stdout == ""
    assert sandbox.calls == []


def test_a_real_rollback_says_what_it_did_not_what_it_would_do(sandbox, planned):
    db, plan = planned
    vg(sandbox, db, "apply", plan, "--yes")
    result = vg(sandbox, db, "rollback", "--yes")
    assert "would" not in result.output and "done: delete User Group 'DNS'" in result.stdout


# ---- status ---------------------------------------------------------------------------------------


def test_status_follows_scan_plan_rehearsal_apply_and_verify(sandbox, tmp_path):
    db, plan = tmp_path / "inv.db", tmp_path / "plan.json"

    def status():
        text = vg(sandbox, db, "status").output
        return text, stable_json(vg(sandbox, db, "status", "--json"))

    vg(sandbox, db, "scan")
    text, data = status()
    assert data["stage"] == "scanned" and "Next: vgmigrate plan --out plan.json" in text
    vg(sandbox, db, "plan", "--on-existing", "suffix")  # not written: not a plan anyone can apply
    assert status()[1]["stage"] == "scanned"
    vg(sandbox, db, "plan", "--out", plan, "--on-existing", "suffix")
    text, data = status()
    assert data["stage"] == "planned" and "not rehearsed" in text and "vgmigrate rehearse plan.json" in text
    vg(sandbox, db, "rehearse", plan)
    text, data = status()
    assert data["stage"] == "rehearsed" and data["plan"]["rehearsal"]["passed"] and "rehearsal passed" in text
    vg(sandbox, db, "apply", plan, "--yes")
    text, data = status()
    assert data["stage"] == "apply done" and "Next: vgmigrate verify" in text
    verified = vg(sandbox, db, "verify").output
    assert "vgmigrate cutover" in verified
    rows = list(open_inventory(db).db.query("select * from verifications"))
    assert len(rows) == 1 and rows[0]["differences"] == 0 and rows[0]["run_id"] == data["runs"][-1]["id"]
    text, data = status()
    assert data["stage"] == "verified" and "Next: vgmigrate verify" not in text
    assert "migration is verified" in text and "remove the migrated members from the CF- groups in your IdP" in text

    dns = sandbox.state.user_groups_by_name()["DNS"]
    client_for(sandbox).remove_user_group_member(dns["id"], dns["members"][0])
    vg(sandbox, db, "verify", expect=3)
    text, data = status()
    assert data["stage"] == "verify_differences" and data["verification"]["differences"] == 2 and "2 difference(s)" in text

    vg(sandbox, db, "rollback", "--yes", "--force")
    assert status()[1]["stage"] == "apply rolled_back"
    vg(sandbox, db, "scan")
    assert status()[1]["stage"] == "scanned"  # a new scan after the rollback: plan again
    assert writes(sandbox)
