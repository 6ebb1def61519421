"""`vgmigrate sandbox serve|seed`: options, seed files, and a clean stop on Ctrl-C."""

import json
import signal
import subprocess
import sys

import pytest
import requests
from click.testing import CliRunner

from migrate.cli import cli


def run(*args):
    return CliRunner().invoke(cli, ["sandbox", *args])


def test_seed_dumps_the_demo_account_as_loadable_json():
    result = run("seed")
    assert result.exit_code == 0
    seed = json.loads(result.output)
    assert seed["account"]["name"] == "Acme Corp" and len(seed["scim_groups"]) == 77
    generated = json.loads(run("seed", "--generate", "12,40").output)
    assert len(generated["permission_groups"]) == 12 + 12 and len(generated["members"]) == 40


@pytest.mark.parametrize(
    "args",
    [
        ["--rate-limit", "1200"],
        ["--rate-limit", "0/300"],
        ["--generate", "2000"],
        ["--fail-5xx", "1.5"],
        ["--latency-ms", "-1"],
        ["--port", "70000"],
    ],
)
def test_bad_option_values_are_usage_errors(args):
    result = run("serve", *args)
    assert result.exit_code == 2
    assert "Invalid value" in result.output


def test_seed_and_generate_together_is_a_usage_error(tmp_path):
    path = tmp_path / "seed.json"
    path.write_text("{}")
    assert run("serve", "--seed", str(path), "--generate", "2,2").exit_code == 2


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "is not valid JSON"),
        ('{"account": {"id": "nothex", "name": "x"}}', "seed.account.id"),
        ('{"account": {"id": "' + "a" * 32 + '", "name": "x"}, "members": [{"id": "m"}]}', "seed.members[0].email"),
    ],
)
def test_malformed_seed_files_fail_in_one_line(tmp_path, content, message):
    path = tmp_path / "seed.json"
    path.write_text(content)
    result = run("serve", "--seed", str(path), "--port", "0")
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_missing_seed_file_fails_in_one_line(tmp_path):
    result = run("serve", "--seed", str(tmp_path / "absent.json"))
    assert result.exit_code == 1 and "cannot read seed file" in result.output


def test_serve_prints_exports_serves_and_stops_cleanly_on_ctrl_c():
    process = subprocess.Popen(
        [sys.executable, "-m", "migrate", "sandbox", "serve", "--port", "0", "--rate-limit", "50/10"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        lines = [process.stdout.readline() for _ in range(6)]
        export = next(line for line in lines if line.strip().startswith("export "))
        env = dict(pair.split("=", 1) for pair in export.split()[1:])
        assert set(env) == {"CLOUDFLARE_BASE_URL", "CLOUDFLARE_ACCOUNT_ID", "CLOUDFLARE_API_TOKEN"}
        response = requests.get(
            f"{env['CLOUDFLARE_BASE_URL']}/accounts/{env['CLOUDFLARE_ACCOUNT_ID']}/iam/user_groups",
            headers={"Authorization": f"Bearer {env['CLOUDFLARE_API_TOKEN']}"}, timeout=5,
        )
        assert response.status_code == 200
        assert response.headers["Ratelimit-Policy"] == '"burst";q=50;w=10'
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0
    assert "Traceback" not in err
