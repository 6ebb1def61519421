"""A real `kill -9` of `vgmigrate apply` mid-run: the next apply takes over the dead process's lock,
reconciles the journal against live state and finishes, with nothing created twice."""

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time

from engine_support import env_for, run
from migrate.cloudflare import CloudflareClient


class Served:
    """`vgmigrate sandbox serve` in its own process, as a user runs it."""

    def __init__(self, *args):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "migrate", "sandbox", "serve", "--port", "0", "--no-rate-limit", *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        text = ""
        while "export CLOUDFLARE_BASE_URL" not in text:
            line = self.proc.stdout.readline()
            assert line, f"sandbox did not start: {text}"
            text += line
        values = dict(re.findall(r"(CLOUDFLARE_\w+)=(\S+)", text))
        self.base_url, self.account_id, self.token = values["CLOUDFLARE_BASE_URL"], values["CLOUDFLARE_ACCOUNT_ID"], values["CLOUDFLARE_API_TOKEN"]

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=10)


def done_steps(db):
    with sqlite3.connect(db) as conn:
        try:
            return conn.execute("select count(*) from actions where status = 'done'").fetchone()[0]
        except sqlite3.OperationalError:
            return 0


def test_kill_9_mid_apply_then_resume(tmp_path):
    served = Served("--latency-ms", "60")
    try:
        db, plan = tmp_path / "inv.db", tmp_path / "plan.json"
        run(served, db, "scan")
        run(served, db, "plan", "--out", plan, "--on-existing", "adopt")
        apply = subprocess.Popen(
            [sys.executable, "-m", "migrate", "apply", str(plan), "--yes", "--parallel", "1"],
            env={**os.environ, **env_for(served, db)}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while done_steps(db) < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
        apply.send_signal(signal.SIGKILL)
        apply.wait()
        killed_at = done_steps(db)
        assert 4 <= killed_at < 13, "the kill should land mid-run"
        with sqlite3.connect(db) as conn:
            assert conn.execute("select pid from locks").fetchone() == (apply.pid,)  # left behind by kill -9

        result = run(served, db, "apply", plan, "--yes")
        assert "done" in result.output
        verify = run(served, db, "verify")
        assert "no differences" in verify.output
        live = [g["name"] for g in CloudflareClient.connect(served.base_url, served.token, served.account_id).user_groups()]
        assert len(live) == len(set(live))
    finally:
        served.stop()
