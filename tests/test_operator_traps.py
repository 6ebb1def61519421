"""Traps an operator must not fall into (issue 22): a rollback that misses live changes, silent
long runs, outputs that disagree, and small surprises of the command line."""

import json
import re

import pytest
from engine_support import iam_state, open_inventory, run


def migrated(sandbox, db):
    run(sandbox, db, "scan")
    run(sandbox, db, "plan", "--on-existing", "suffix", "--out", db.parent / "plan.json")
    run(sandbox, db, "apply", db.parent / "plan.json", "--yes")
    return open_inventory(db).runs("apply")[-1]["id"]


# --- 3. a rollback never silently misses live changes --------------------------------------------


def test_an_apply_with_nothing_to_do_records_no_run_and_rollback_undoes_the_live_one(sandbox, tmp_path):
    db = tmp_path / "inv.db"
    before = iam_state(sandbox)
    first = migrated(sandbox, db)
    run(sandbox, db, "scan")
    run(sandbox, db, "plan", "--on-existing", "suffix", "--out", tmp_path / "again.json")
    assert json.loads((tmp_path / "again.json").read_text())["steps"] == []
    again = run(sandbox, db, "apply", tmp_path / "again.json", "--yes")
    assert "no run was recorded" in again.output
    assert [r["id"] for r in open_inventory(db).runs()] == [first]
    undone = run(sandbox, db, "rollback", "--yes")
    assert f"undoing run {first}, the newest apply whose changes are still live" in undone.output
    assert iam_state(sandbox) == before


def test_rollback_skips_an_empty_run_an_older_version_recorded(sandbox, tmp_path):
    db = tmp_path / "inv.db"
    before = iam_state(sandbox)
    first = migrated(sandbox, db)
    inv = open_inventory(db)
    plan_id = inv.run(first)["plan_id"]
    inv.start_run({"id": "apply-29990101T000000000Z", "kind": "apply", "plan_id": "0" * 64, "account_id": sandbox.account_id})
    inv.update_run("apply-29990101T000000000Z", status="done", message="all steps done", finished_at="2999-01-01T00:00:00Z")
    dry = run(sandbox, db, "rollback", "--dry-run")
    assert f"rollback of run {first}, the newest apply whose changes are still live" in dry.output and "would" in dry.output
    run(sandbox, db, "rollback", "--yes")
    assert iam_state(sandbox) == before
    assert inv.run(first)["status"] == "rolled_back" and inv.run(first)["plan_id"] == plan_id
    assert "nothing left to undo" in run(sandbox, db, "rollback", "--yes").output  # twice is once


# --- 5. the auditor's questions -------------------------------------------------------------------


def test_a_rolled_back_runs_message_says_so(sandbox, tmp_path):
    db = tmp_path / "inv.db"
    first = migrated(sandbox, db)
    run(sandbox, db, "rollback", "--yes")
    runs = {r["id"]: r for r in json.loads(run(sandbox, db, "history", "--json").output)["runs"]}
    rollback = next(r for r in runs.values() if r["kind"] == "rollback")
    assert runs[first]["status"] == "rolled_back"
    assert runs[first]["message"] == f"all steps done; rolled back at {rollback['finished_at']} by {rollback['id']}"


# --- 6. small things a user trips on --------------------------------------------------------------


def test_cutover_after_an_api_mode_apply_says_there_is_none_and_what_to_do_in_the_idp(sandbox, tmp_path):
    db = tmp_path / "inv.db"
    migrated(sandbox, db)
    calls = len(sandbox.calls)
    refused = run(sandbox, db, "cutover", "--yes", expect=1)  # no Authentik settings: not asked for them
    assert "API mode has no cutover" in refused.output and "in your IdP" in refused.output
    assert "AUTHENTIK" not in refused.output and "Traceback" not in refused.output
    assert len(sandbox.calls) == calls


def test_cutover_prints_the_result_of_the_verify_it_runs_first(tmp_path):
    from test_idp_mode import plan_idp, vg

    from migrate.sandbox import Sandbox
    from migrate.sandbox.authentik import AuthentikSandbox
    from migrate.sandbox.seeds import demo_seed

    with Sandbox(seed=demo_seed(), rate_limit=None) as cf, AuthentikSandbox(cloudflare=cf) as ak:
        pair = (cf, ak)
        db, out, plan = plan_idp(pair, tmp_path)
        vg(pair, db, "apply", out, "--yes")
        run_id = open_inventory(db).runs("apply")[-1]["id"]
        cut = vg(pair, db, "cutover", "--yes")
        groups = sum(1 for g in plan["groups"] if g.get("action") != "conflict")
        assert f"verify: run {run_id}: {groups} User Groups and " in cut.output and "no differences" in cut.output


def test_status_where_there_is_no_inventory_creates_none_and_reads_right(sandbox, tmp_path):
    db = tmp_path / "elsewhere.db"
    said = run(sandbox, db, "status").output
    assert not db.exists()
    assert said.startswith(f"No inventory at {db}: nothing has been scanned into it.") and "Next: vgmigrate scan" in said
    assert json.loads(run(sandbox, db, "status", "--json").output)["stage"] == "no_inventory" and not db.exists()


def test_ctrl_c_in_scan_is_one_line_like_apply_and_exits_130(tmp_path):
    """A real SIGINT to a real process, mid-scan (each answer of the served sandbox takes 150 ms)."""
    import os
    import signal
    import subprocess
    import sys

    from engine_support import env_for
    from test_kill import Served

    served = Served("--latency-ms", "150")
    try:
        db = tmp_path / "inv.db"
        scan = subprocess.Popen([sys.executable, "-m", "migrate", "scan"], env={**os.environ, **env_for(served, db)},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert scan.stderr.readline().startswith("reading")  # it has started reading the account
        scan.send_signal(signal.SIGINT)
        _, err = scan.communicate(timeout=20)
        lines = [line for line in err.splitlines() if line.strip() and not line.startswith("reading")]
        assert scan.returncode == 130, err
        assert lines == ["Error: interrupted; nothing was recorded (a scan is one transaction; the last scan is intact): "
                         "run `vgmigrate scan` again"], err
        assert open_inventory(db).last_scan() is None
    finally:
        served.stop()


def test_ctrl_c_anywhere_else_exits_130_in_one_line_even_at_a_prompt(sandbox, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from engine_support import env_for
    from migrate import cli as cli_module

    db = tmp_path / "inv.db"
    migrated(sandbox, db)

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("migrate.verify.verify_run", ctrl_c)
    verify = CliRunner().invoke(cli_module.cli, ["verify"], env=env_for(sandbox, db))
    monkeypatch.setattr(cli_module, "need_terminal_or_yes", lambda command: None)  # as on a terminal

    monkeypatch.setattr("click.termui._readline_prompt", ctrl_c)  # Ctrl-C while "Roll back run ...?" waits
    prompt = CliRunner().invoke(cli_module.cli, ["rollback"], env=env_for(sandbox, db))
    for result in (verify, prompt):
        assert result.exit_code == 130, result.output
        errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
        assert errors == ["Error: interrupted; run the command again (`vgmigrate status` says where the migration stands)"]
        assert "Aborted" not in result.output and "Traceback" not in result.output
    assert open_inventory(db).runs()[-1]["kind"] == "apply"  # the rollback asked and did nothing


def test_scan_says_which_kind_of_token_it_found(sandbox, tmp_path):
    from migrate.sandbox import Sandbox
    from migrate.sandbox.seeds import demo_seed

    said = run(sandbox, tmp_path / "a.db", "scan").output
    assert f"of account {sandbox.account_id} with an account-owned API token: " in said
    assert json.loads(run(sandbox, tmp_path / "a.db", "scan", "--json").stdout)["token_kind"] == "account"
    with Sandbox(seed=demo_seed(), rate_limit=None, token_kind="user") as user_owned:
        assert "with a user-owned API token: " in run(user_owned, tmp_path / "u.db", "scan").output


def test_a_bad_authentik_token_is_found_before_anything_is_read_from_cloudflare(tmp_path):
    from test_idp_mode import vg

    from migrate.sandbox import Sandbox
    from migrate.sandbox.authentik import AuthentikSandbox
    from migrate.sandbox.seeds import demo_seed

    with Sandbox(seed=demo_seed(), rate_limit=None) as cf, AuthentikSandbox(cloudflare=cf) as ak:
        db = tmp_path / "v.db"
        calls = len(cf.calls)
        refused = vg((cf, ak), db, "scan", "--source", "authentik", expect=1, env={"AUTHENTIK_TOKEN": "not-the-token"})
        errors = [line for line in refused.output.splitlines() if line.strip()]
        assert len(errors) == 1 and errors[0].startswith("Error: Authentik API GET /core/users/me/ failed with HTTP 403"), refused.output
        assert "Authentik token is wrong" in errors[0] and "not-the-token" not in refused.output
        assert len(cf.calls) == calls and not db.exists()


def test_a_name_with_a_no_break_space_renders_the_same_in_every_output(sandbox, tmp_path):
    """The demo's `CF-<id> -  Audit Logs<NBSP>Viewer`: shown `Audit Logs⍽Viewer` in the terminal's
    tables, the approval report (text, Markdown, HTML) and the audit export, never as a blank, `␣` or `\\xa0`."""
    db = tmp_path / "inv.db"
    outputs = {"scan": run(sandbox, db, "scan").stdout, "inventory": run(sandbox, db, "inventory").stdout,
               "findings": run(sandbox, db, "inventory", "--findings", "name_variant").stdout}
    run(sandbox, db, "plan", "--on-existing", "suffix", "--out", tmp_path / "plan.json")
    for fmt in ("table", "markdown", "html"):
        outputs[f"show {fmt}"] = run(sandbox, db, "show", tmp_path / "plan.json", "--format", fmt).stdout
    run(sandbox, db, "apply", tmp_path / "plan.json", "--yes")
    for fmt in ("markdown", "html"):
        run(sandbox, db, "export", "--format", fmt, "--out", tmp_path / fmt)
        outputs[f"export {fmt}"] = next((tmp_path / fmt).glob("summary.*")).read_text()  # beside it: the data, as it is
    for name, text in outputs.items():
        text = re.sub(r"<[^>]+>", "", text)  # as HTML reads: the ⍽ sits in a span saying "no-break space"
        assert "Logs\u237dViewer" in text, name  # (a table may wrap its cell at the space before)
        assert "\u2423" not in text and "\\xa0" not in text and "Logs\u00a0Viewer" not in text, name


def test_authentik_calls_are_marked_not_in_cloudflares_audit_log_rather_than_unmatched(tmp_path):
    from test_idp_mode import plan_idp, vg

    from migrate.sandbox import Sandbox
    from migrate.sandbox.authentik import AuthentikSandbox
    from migrate.sandbox.seeds import demo_seed

    with Sandbox(seed=demo_seed(), rate_limit=None) as cf, AuthentikSandbox(cloudflare=cf) as ak:
        pair = (cf, ak)
        db, out, plan = plan_idp(pair, tmp_path)
        vg(pair, db, "apply", out, "--yes")
        vg(pair, db, "export", "--format", "json", "--out", tmp_path / "j", "--with-audit-log")
        vg(pair, db, "export", "--format", "markdown", "--out", tmp_path / "m", "--with-audit-log")
    exported = json.loads((tmp_path / "j" / "export.json").read_text())
    audit, journal = exported["export"]["audit_log"], exported["tables"]["journal"]
    to_authentik = [r for r in journal if r["path"].startswith("/core/") or "/providers/" in r["path"]]
    assert to_authentik and audit["unlinked_writes"] == []
    marked = [r for r in to_authentik if not r["audit_log_ids"]]
    assert marked and all(r["audit_match"] == "not in Cloudflare's audit log (a call to Authentik)" for r in marked)
    assert audit["not_in_audit_log"] == len(marked)
    summary = (tmp_path / "m" / "summary.md").read_text()
    assert "have no matching audit entry" not in summary and f"{len(marked)} journaled call(s) went to Authentik" in summary


def test_the_reports_print_on_a4_portrait_with_every_column_on_the_page():
    """Checked by rule here (Chromium is not on every machine): A4 portrait, and in print no table
    cell keeps a minimum width or refuses to wrap, so the widest table (the journal with its
    audit-log column) shrinks to the page. Printed with headless Chromium, nothing passed the margin."""
    from migrate import export, markup as approval  # the page and its CSS live in markup

    page = approval.html_page("t", "<p>x</p>")
    assert export.html_page is approval.html_page and approval.CSS in page  # the audit summary uses the same page
    screen, _, printed = approval.CSS.partition("@media print {")
    assert "@page { size: A4 portrait;" in printed
    cells = re.search(r"\n  th, td \{([^}]*)\}", printed).group(1)
    assert "min-width: 0 !important" in cells
    assert "white-space: nowrap" in screen and re.search(r"th \*, td \*, \.nowrap[^{]*\{[^}]*white-space: normal !important", printed)
    assert "overflow-wrap: anywhere" in re.search(r"\n  code, \.name[^{]*\{([^}]*)\}", printed).group(1)


# --- 4. long runs keep talking ----------------------------------------------------------------------


def test_the_tools_own_recent_calls_from_an_earlier_command_are_not_other_clients():
    """A scan sends 800 calls, then an apply (another process, a new limiter) starts at once: the
    server's window holds the scan's calls. Handed over, they are the apply's own: no "other
    clients" message, the same pace as one long run, and no 429."""
    from test_performance import Clock, Window

    from migrate.http import RateLimiter

    def command(server, clock, calls, earlier=None):
        messages = []
        limiter = RateLimiter(1200, 300, clock=clock, sleep=clock.sleep, burst=120, notify=messages.append)
        if earlier is not None:
            limiter.count_earlier(earlier, wall=clock.now)
        rejected = 0
        for _ in range(calls):
            limiter.acquire()
            allowed, remaining, reset = server.hit(clock.now)
            rejected += not allowed
            clock.now += 0.05
            limiter.observe({"Ratelimit": f'"default";r={remaining};t={reset}', "Ratelimit-Policy": '"burst";q=1200;w=300'})
            limiter.done(0.05)
        return limiter, messages, rejected

    for hand_over in (True, False):
        clock, server = Clock(), Window(1200, 300)
        scan, _, _ = command(server, clock, 800)
        apply, messages, rejected = command(server, clock, 600, scan.sent_recently(wall=clock.now) if hand_over else None)
        others = [m for m in messages if "other clients" in m]
        if hand_over:
            assert others == [] and apply.others == 0 and rejected == 0
        else:  # what happened before: the scan's calls taken for someone else's
            assert others and "about 8" in others[0]


def test_each_command_leaves_its_calls_for_the_next_to_count_as_its_own(sandbox, tmp_path):
    db = tmp_path / "inv.db"
    run(sandbox, db, "scan")
    scanned = open_inventory(db).recent_calls(f"{sandbox.base_url} {sandbox.account_id}")
    assert len(scanned) == 13  # the demo scan's calls
    run(sandbox, db, "scan")
    assert len(open_inventory(db).recent_calls(f"{sandbox.base_url} {sandbox.account_id}")) == 26
    assert sandbox.token not in (tmp_path / "inv.db").read_bytes().decode("latin-1")


def paced_client(monkeypatch, limit=20, period=3.0):
    """Every CloudflareClient the CLI connects paces at `limit` calls per `period` after one at once:
    Cloudflare's rate limit, scaled down so that a small account waits for it."""
    from migrate.cloudflare import CloudflareClient
    from migrate.http import RateLimiter

    connect = CloudflareClient.connect.__func__
    monkeypatch.setattr(CloudflareClient, "connect", classmethod(
        lambda cls, *args, **kwargs: connect(cls, *args, **{**kwargs, "limiter": RateLimiter(limit, period, burst=1)})))


def test_a_scan_off_a_terminal_keeps_talking_while_it_waits_for_the_rate_limit_with_the_time_left(sandbox, tmp_path, monkeypatch):
    paced_client(monkeypatch, limit=15)  # 0.2 s a call: the demo scan's 13 calls take 2.6 s
    monkeypatch.setenv("VGMIGRATE_PROGRESS_SECONDS", "0.3")
    said = run(sandbox, tmp_path / "inv.db", "scan").stderr.splitlines()
    ticks = [line for line in said if re.fullmatch(r"reading [a-z ]+: [\d,]+(/[\d,]+)?(; about \d+ s left \(\d+ calls at the API rate limit\))?", line)]
    assert len(ticks) >= 3, said  # about one a 0.3 s, where before there was one line per list
    estimates = [int(m.group(1)) for line in ticks if (m := re.search(r"\((\d+) calls at", line))]
    assert estimates and all(n > 0 for n in estimates)  # the pages still to fetch, at the pace of the rate limit


def test_progress_lines_estimate_the_time_left_from_the_calls_still_to_make():
    from migrate.http import RateLimiter
    from migrate.progress import ScanProgress, StepProgress, about

    limiter = RateLimiter(1200, 300, burst=120)  # Cloudflare's: the first 120 at once, then 4 a second
    assert limiter.seconds_for(100) == 0 and limiter.seconds_for(1120) == pytest.approx(250)

    class Listing:
        def calls_left(self):
            return 1120

    scan = ScanProgress(eta=limiter.seconds_for, tty=False, every=0)
    scan.watch([Listing(), Listing(), object()])
    assert scan.calls_left() == 2240
    steps = StepProgress("applying", 2000, "steps", done=880, tty=False, every=0, eta=limiter.seconds_for)
    assert steps.line() == "applying: 880/2,000 steps; about 4 min left (1,120 calls at the API rate limit)"
    assert StepProgress("applying", 200, "steps", done=150, tty=False, every=0, eta=limiter.seconds_for).line() == "applying: 150/200 steps"
    assert about(0.5) == "1 s" and about(100) == "2 min" and about(3900) == "1 h 5 min"


def test_rehearse_shows_progress_and_how_long_the_real_apply_takes_at_the_rate_limit(sandbox, tmp_path, monkeypatch):
    from migrate.rehearsal import real_apply_estimate

    db = tmp_path / "inv.db"
    run(sandbox, db, "scan")
    run(sandbox, db, "plan", "--on-existing", "suffix", "--out", tmp_path / "plan.json")
    steps = len(json.loads((tmp_path / "plan.json").read_text())["steps"])
    monkeypatch.setenv("VGMIGRATE_PROGRESS_SECONDS", "0")  # a line at every step
    said = run(sandbox, db, "rehearse", tmp_path / "plan.json")
    assert f"rehearsing apply: {steps}/{steps} steps" in said.stderr and "rehearsing rollback: " in said.stderr
    calls = int(re.search(r"apply done \((\d+) API calls\)", said.stdout).group(1))
    assert f"the real apply makes {calls} API calls, within the 120 sent at once: the rate limit will not slow it" in said.stdout
    # 2,000 calls: 120 at once, then 1,880 at 4 a second
    assert real_apply_estimate(2000) == ("the real apply makes 2,000 API calls: about 8 min at the API rate limit "
                                         "(1200 requests / 5 min), more if other clients share the token")
