"""The README's Entra ID walkthrough runs as written against the Cloudflare sandbox and the Entra
emulator (what `vgmigrate sandbox serve --entra` serves), and leaves both exactly as it found them."""

import re
import shlex
from pathlib import Path

from click.testing import CliRunner
from engine_support import iam_state

from migrate.cli import cli
from migrate.sandbox import Sandbox
from migrate.sandbox.entra import EntraSandbox
from migrate.sandbox.seeds import demo_seed

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def entra_side(entra):
    with entra.state.lock:
        groups = {g["displayName"]: sorted(g["members"]) for g in entra.state.groups.values()}
        assigned = sorted(entra.state.groups[g]["displayName"] for g in entra.state.assigned_groups(entra.service_principal_id))
    return groups, assigned


def test_the_entra_walkthrough_runs_as_written_against_the_sandbox_pair(tmp_path, monkeypatch):
    block = re.search(r"<!-- entra-walkthrough -->\n```sh\n(.+?)\n```", README, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    with Sandbox(seed=demo_seed(), rate_limit=None) as cf, EntraSandbox(cloudflare=cf, cycle_seconds=0.5) as entra:
        start = iam_state(cf), entra_side(entra)
        env = {"CLOUDFLARE_API_TOKEN": cf.token, "CLOUDFLARE_ACCOUNT_ID": cf.account_id, "CLOUDFLARE_BASE_URL": cf.base_url,
               "VGMIGRATE_DB": None, **entra.environment()}
        ran = []
        for line in block.splitlines():
            command, _, _ = line.partition("#")
            words = shlex.split(command)
            redirect = None
            if ">" in words:
                words, redirect = words[: words.index(">")], words[words.index(">") + 1]
            result = CliRunner().invoke(cli, words[1:], env=env)
            assert result.exit_code == 0, f"{line}\n{result.output}"
            assert entra.client_secret not in result.output
            if redirect:
                Path(redirect).write_text(result.stdout)
            ran.append(words[1])
        end = iam_state(cf), entra_side(entra)
    assert ran == ["idp", "scan", "plan", "show", "apply", "verify", "cutover", "status", "rollback"]
    assert "Entra ID" in Path("entra-plan.html").read_text()
    assert end == start


def test_the_readme_names_every_permission_the_client_asks_for():
    from migrate.idp.entra import REQUIRED_PERMISSIONS

    section = README.split("## The IdP-managed path (Entra ID)")[1].split("\n## ")[0]
    for permission in REQUIRED_PERMISSIONS:
        assert f"`{permission}`" in section
