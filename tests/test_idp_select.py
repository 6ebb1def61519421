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


def test_with_several_idps_set_apply_cutover_and_rollback_reach_the_plans_own(tmp_path):
    """Authentik's variables are set too (pointing nowhere): once the plan is made with --idp okta,
    apply, cutover and rollback reach Okta, the IdP the plan names, without being told."""
    from engine_support import iam_state

    from migrate.sandbox import Sandbox
    from migrate.sandbox.okta import OktaSandbox
    from migrate.sandbox.seeds import demo_seed

    with Sandbox(seed=demo_seed(), rate_limit=None) as cf, OktaSandbox(cloudflare=cf, push_delay=(0.0, 0.05), retry_backoff=0.05) as okta:
        env = {k: None for k in ALL_IDP_VARIABLES}
        env.update(CLOUDFLARE_API_TOKEN=cf.token, CLOUDFLARE_ACCOUNT_ID=cf.account_id, CLOUDFLARE_BASE_URL=cf.base_url,
                   VGMIGRATE_DB=str(tmp_path / "v.db"), AUTHENTIK_URL="http://127.0.0.1:9", AUTHENTIK_TOKEN="x", **okta.environment())
        before = iam_state(cf)

        def run(*args, expect=0):
            result = CliRunner().invoke(cli, list(args), env=env)
            assert result.exit_code == expect, (args, result.output)
            return result

        run("scan", "--source", "okta")  # --source names the IdP itself
        assert "pass --idp" in run("plan", "--mode", "idp", "--out", str(tmp_path / "p.json"), expect=2).output
        run("--idp", "okta", "plan", "--mode", "idp", "--on-existing", "suffix", "--out", str(tmp_path / "p.json"))
        run("apply", str(tmp_path / "p.json"), "--yes")
        run("cutover", "--yes")
        run("rollback", "--yes")
        okta.settle()
        assert iam_state(cf) == before
