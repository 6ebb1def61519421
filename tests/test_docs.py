"""The README is the user's manual: it must name every command, and CI must run its test command."""

import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from migrate.cli import cli

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def commands(group, prefix=()):
    ctx = click.Context(group)
    for name in group.list_commands(ctx):  # as `--help` lists them, `sandbox` (loaded on demand) too
        command = group.get_command(ctx, name)
        yield (*prefix, name)
        if hasattr(command, "commands"):
            yield from commands(command, (*prefix, name))


@pytest.mark.parametrize("path", sorted(commands(cli)), ids=" ".join)
def test_every_command_is_documented_and_has_help(path):
    assert f"vgmigrate {' '.join(path)}" in README
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0 and "Usage:" in result.output


def test_ci_runs_exactly_the_readme_test_command():
    match = re.search(r"Run the test suite.*?```sh\n(.+?)\n```", README, re.S)
    assert match, "README has no test command block"
    ci_commands = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert match.group(1).strip() in ci_commands


def test_the_readme_walkthrough_runs_as_written_against_the_sandbox(sandbox, tmp_path, monkeypatch):
    """Each line of the walkthrough block, in order; `# exit N` says the exit code it must have."""
    import shlex
    import shutil

    block = re.search(r"<!-- walkthrough -->\n```sh\n(.+?)\n```", README, re.S).group(1)
    (tmp_path / "fixtures").mkdir()
    shutil.copy(ROOT / "fixtures" / "mapping.example.toml", tmp_path / "fixtures")
    monkeypatch.chdir(tmp_path)
    env = {"CLOUDFLARE_API_TOKEN": sandbox.token, "CLOUDFLARE_ACCOUNT_ID": sandbox.account_id,
           "CLOUDFLARE_BASE_URL": sandbox.base_url, "VGMIGRATE_DB": None}
    ran = []
    for line in block.splitlines():
        command, _, comment = line.partition("#")
        expected = int(re.search(r"exit (\d)", comment).group(1)) if re.search(r"exit (\d)", comment) else 0
        words = shlex.split(command)
        assert words[0] == "vgmigrate", line
        redirect = None
        if ">" in words:
            words, redirect = words[: words.index(">")], words[words.index(">") + 1]
        result = CliRunner().invoke(cli, words[1:], env=env)
        assert result.exit_code == expected, f"{line}\n{result.output}"
        if redirect:
            Path(redirect).write_text(result.stdout)
        ran.append(words[1])
    assert ran[:3] == ["scan", "inventory", "plan"] and "rollback" in ran
    assert "passed against the sandbox" in Path("plan.html").read_text()  # rehearsed before it was shown
    assert (tmp_path / "vgmigrate.db").exists() and (tmp_path / "audit" / "summary.html").exists()


def test_the_idp_walkthrough_runs_as_written_against_the_sandbox_pair(tmp_path, monkeypatch):
    """The IdP-managed path, line by line, against the Cloudflare sandbox and the Authentik emulator."""
    import shlex

    from migrate.sandbox import Sandbox
    from migrate.sandbox.authentik import AuthentikSandbox
    from migrate.sandbox.seeds import demo_seed

    block = re.search(r"<!-- idp-walkthrough -->\n```sh\n(.+?)\n```", README, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    with Sandbox(seed=demo_seed(), rate_limit=None) as cf, AuthentikSandbox(cloudflare=cf) as ak:
        env = {"CLOUDFLARE_API_TOKEN": cf.token, "CLOUDFLARE_ACCOUNT_ID": cf.account_id, "CLOUDFLARE_BASE_URL": cf.base_url,
               "VGMIGRATE_DB": None, "AUTHENTIK_URL": ak.base_url, "AUTHENTIK_TOKEN": ak.token}
        ran = []
        for line in block.splitlines():
            command, _, _ = line.partition("#")
            words = shlex.split(command)
            redirect = None
            if ">" in words:
                words, redirect = words[: words.index(">")], words[words.index(">") + 1]
            result = CliRunner().invoke(cli, words[1:], env=env)
            assert result.exit_code == 0, f"{line}\n{result.output}"
            if redirect:
                Path(redirect).write_text(result.stdout)
            ran.append(words[1])
    assert ran == ["idp", "scan", "plan", "show", "apply", "verify", "cutover", "status", "rollback"]
    assert "Authentik" in Path("idp-plan.html").read_text()
