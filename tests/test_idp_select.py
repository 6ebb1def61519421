"""Which IdP a command reaches: the one whose variables are set, or `--idp` when several are."""

import pytest
from click.testing import CliRunner

from migrate.cli import cli

ALL_IDP_VARIABLES = ("AUTHENTIK_URL", "AUTHENTIK_TOKEN", "OKTA_ORG_URL", "OKTA_API_TOKEN", "OKTA_ACCESS_TOKEN",
                     "ENTRA_TENANT_ID", "ENTRA_CLIENT_ID", "ENTRA_CLIENT_SECRET", "ENTRA_ACCESS_TOKEN", "VGMIGRATE_IDP")


def idp_check(tmp_path, *args, **env):
    clean = {k: None for k in ALL_IDP_VARIABLES}
    base = ["--db", str(tmp_path / "v.db"), "--account", "a" * 32, "--token", "t" * 40, "--base-url", "http://127.0.0.1:9"]
    return CliRunner().invoke(cli, [*args, *base, "idp", "check"], env={**clean, **env})


@pytest.mark.parametrize("env, words", [
    ({}, "no IdP set: set AUTHENTIK_URL and AUTHENTIK_TOKEN, OKTA_ORG_URL and OKTA_API_TOKEN"),
    ({"AUTHENTIK_URL": "http://127.0.0.1:9", "AUTHENTIK_TOKEN": "x", "OKTA_ORG_URL": "http://127.0.0.1:9"},
     "the variables of authentik and okta are all set: pass --idp"),
    ({"AUTHENTIK_URL": "http://127.0.0.1:9", "ENTRA_TENANT_ID": "t"}, "the variables of authentik and entra are all set"),
])
def test_no_idp_or_several_is_one_line_naming_what_to_set(tmp_path, env, words):
    result = idp_check(tmp_path, **env)
    assert result.exit_code == 2 and words in result.output and result.output.count("\n") == 1, result.output
    assert not (tmp_path / "v.db").exists()


def test_idp_picks_one_of_several(tmp_path):
    # --idp authentik with its token missing: the Authentik error, not the "several" one.
    result = idp_check(tmp_path, "--idp", "authentik", AUTHENTIK_URL="http://127.0.0.1:9", OKTA_ORG_URL="http://127.0.0.1:9")
    assert result.exit_code == 2 and "no Authentik token; set AUTHENTIK_TOKEN" in result.output, result.output
