"""The README is the user's manual: it must name every command, and CI must run its test command."""

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from migrate.cli import cli

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def commands(group, prefix=()):
    for name, command in group.commands.items():
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
