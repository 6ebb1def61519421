"""Ctrl-C during apply and rollback: one line, a consistent journal, and the journal, `history`,
`status` and the exit code agreeing afterwards. The interrupt is simulated deterministically: a
KeyboardInterrupt raised right after a call took effect (the worst moment: the change is made, the
journal still says pending), or from the progress callback between two journal writes."""

import pytest
from click.testing import CliRunner

from engine_support import client_for, env_for, iam_state, open_inventory, run
from migrate.cli import cli
from migrate.cloudflare import CloudflareClient
from migrate.rollback import rollback_run


@pytest.fixture
def applied(sandbox, tmp_path):
    db, plan = tmp_path / "inv.db", tmp_path / "plan.json"
    before = iam_state(sandbox)
    run(sandbox, db, "scan")
    run(sandbox, db, "plan", "--out", plan, "--on-existing", "suffix")
    run(sandbox, db, "apply", plan, "--yes")
    return db, plan, before


def ctrl_c_after(monkeypatch, method, calls=1):
    """The `calls`-th call of CloudflareClient.<method> takes effect, then Ctrl-C arrives."""
    original = getattr(CloudflareClient, method)
    seen = []

    def interrupted(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        seen.append(args)
        if len(seen) == calls:
            raise KeyboardInterrupt
        return result

    monkeypatch.setattr(CloudflareClient, method, interrupted)
    return seen


def invoke(sandbox, db, *args):
    return CliRunner().invoke(cli, [str(a) for a in args], env=env_for(sandbox, db))


def one_error_line(result):
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Aborted" not in result.output and "Traceback" not in result.output
    return lines[0]


def statuses(db):
    inventory = open_inventory(db)
    return [(r["kind"], r["status"]) for r in inventory.runs()]


def test_ctrl_c_during_rollback_is_one_line_and_the_next_rollback_finishes(sandbox, applied, monkeypatch):
    db, _, before = applied
    ctrl_c_after(monkeypatch, "delete_user_group", calls=2)
    result = invoke(sandbox, db, "rollback", "--yes")
    assert result.exit_code == 130
    error = one_error_line(result)
    assert "interrupted" in error and "journal is consistent" in error and "vgmigrate rollback" in error
    assert statuses(db) == [("apply", "partly_rolled_back"), ("rollback", "interrupted")]
    history = run(sandbox, db, "history").output
    assert "partly_rolled_back" in history and "interrupted" in history
    assert "Next: vgmigrate rollback again" in run(sandbox, db, "status").output
    monkeypatch.undo()

    again = run(sandbox, db, "rollback", "--yes").output
    assert ": rolled_back (" in again
    assert statuses(db) == [("apply", "rolled_back"), ("rollback", "interrupted"), ("rollback", "done")]
    assert iam_state(sandbox) == before
    assert "nothing left to undo" in run(sandbox, db, "rollback", "--yes").output


def test_ctrl_c_between_deleting_a_group_and_marking_its_members_does_not_hide_work(sandbox, applied):
    """The case that once had a second rollback say rolled_back (exit 0) while history said
    partly_rolled_back: the group's create is marked undone, its member add not yet."""
    db, _, before = applied
    client = client_for(sandbox)

    def ctrl_c_after_first_delete(action, outcome):
        if outcome.startswith("delete User Group"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        rollback_run(client, open_inventory(db), progress=ctrl_c_after_first_delete)
    apply_run = open_inventory(db).runs("apply")[0]
    left = [a for a in open_inventory(db).actions(apply_run["id"]) if a["status"] in ("done", "pending")]
    assert left and apply_run["status"] == "partly_rolled_back"

    result = rollback_run(client, open_inventory(db))
    apply_run = open_inventory(db).runs("apply")[0]
    assert (result.status, apply_run["status"]) == ("rolled_back", "rolled_back")
    assert all(a["status"] == "rolled_back" for a in open_inventory(db).actions(apply_run["id"]))
    assert iam_state(sandbox) == before


@pytest.mark.parametrize("nth", [1, 2, 3])
def test_after_any_interrupted_rollback_exit_code_history_and_status_agree(sandbox, applied, monkeypatch, nth):
    db, _, before = applied
    ctrl_c_after(monkeypatch, "delete_user_group", calls=nth)
    first = invoke(sandbox, db, "rollback", "--yes")
    monkeypatch.undo()
    assert first.exit_code == 130 and "interrupted" in one_error_line(first)
    assert statuses(db)[0] == ("apply", "partly_rolled_back")
    second = invoke(sandbox, db, "rollback", "--yes")
    apply_status = statuses(db)[0][1]
    # exit 0 and "rolled_back" exactly when the journal says everything is undone
    assert (second.exit_code == 0) == (apply_status == "rolled_back") == (": rolled_back (" in second.output)
    assert apply_status == "rolled_back" and iam_state(sandbox) == before
    assert "vgmigrate scan, then plan again" in run(sandbox, db, "status").output


def test_ctrl_c_during_apply_is_one_line_and_apply_again_finishes(sandbox, tmp_path, monkeypatch):
    db, plan = tmp_path / "inv.db", tmp_path / "plan.json"
    run(sandbox, db, "scan")
    run(sandbox, db, "plan", "--out", plan, "--on-existing", "suffix")
    ctrl_c_after(monkeypatch, "create_user_group", calls=2)
    result = invoke(sandbox, db, "apply", plan, "--yes", "--parallel", "1")
    assert result.exit_code == 130
    assert "interrupted" in one_error_line(result)
    assert statuses(db) == [("apply", "interrupted")]
    assert "Next: vgmigrate apply <the same plan> to finish it" in run(sandbox, db, "status").output
    monkeypatch.undo()
    run(sandbox, db, "apply", plan, "--yes")
    assert statuses(db) == [("apply", "done")]
    run(sandbox, db, "verify")
