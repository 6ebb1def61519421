"""`vgmigrate demo` and `vgmigrate rehearse`."""

from click.testing import CliRunner

from engine_support import iam_state, run
from migrate.cli import cli
from migrate.sandbox import Sandbox
from migrate.sandbox.seeds import demo_seed


def test_demo_walks_the_whole_migration(tmp_path):
    result = CliRunner().invoke(cli, ["demo", "--dir", str(tmp_path / "demo")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    for step in ("scan", "plan", "rehearse", "report", "apply", "verify", "plan again", "rollback", "history"):
        assert f"] {step}: vgmigrate" in result.output
    assert "exactly as before" in result.output and "no differences" in result.output
    assert "Nothing to do" in result.output
    report = (tmp_path / "demo" / "report.html").read_text()
    assert report.startswith("<!DOCTYPE html>") and "Workers Platform Admin" in report
    assert "Administrator Read Only" in (tmp_path / "demo" / "report.md").read_text()
    again = CliRunner().invoke(cli, ["demo", "--dir", str(tmp_path / "demo")])
    assert again.exit_code == 1 and "already holds a demo inventory" in again.output


def test_demo_walks_the_idp_managed_path(tmp_path):
    result = CliRunner().invoke(cli, ["demo", "--mode", "idp", "--dir", str(tmp_path / "demo")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    for step in ("idp check", "scan", "plan", "report", "apply", "verify", "cutover", "rollback", "history"):
        assert f"] {step}: vgmigrate" in result.output
    assert "no problems found" in result.output and "## In Authentik" in result.output
    assert "exactly as before" in result.output and "AUTHENTIK_URL" in result.output


def test_rehearsal_never_touches_the_account_and_is_reported(tmp_path):
    with Sandbox(seed=demo_seed(), rate_limit=None) as sb:
        db, plan = tmp_path / "inv.db", tmp_path / "plan.json"
        run(sb, db, "scan")
        run(sb, db, "plan", "--out", plan, "--on-existing", "adopt")
        state = iam_state(sb)
        sb.reset_calls()
        result = run(sb, db, "rehearse", plan)
        assert sb.calls == [] and iam_state(sb) == state
        assert "apply done" in result.output and "0 difference(s)" in result.output and "restored exactly" in result.output
        assert "passed against the sandbox" in run(sb, db, "show", plan, "--format", "markdown").output
        assert run(sb, db, "history").output.strip() == "no runs yet"  # the real journal is untouched
        run(sb, db, "apply", plan, "--yes")
        run(sb, db, "verify")
