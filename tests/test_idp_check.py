"""`vgmigrate idp check [--fix]`: the pure assessment over facts, then the whole command against the
Cloudflare sandbox paired with the Authentik emulator."""

import dataclasses
import time

import pytest

from migrate.idp.authentik import version_at_least
from migrate.errors import UsageProblem
from migrate.idp.check import Facts, assess, plan_fix, same_url
from migrate.steps import secret_free

ACCT = "0" * 31 + "1"
URL = f"https://api.cloudflare.com/client/v4/accounts/{ACCT}/scim/v2"
CF_ADMIN = {"pk": "uuid-admin", "name": f"CF-{ACCT} - Administrator"}
CF_DNS = {"pk": "uuid-dns", "name": f"CF-{ACCT} - DNS"}


def healthy(**changes):
    """Facts of a set-up that works: 2026.5, provider attached, token accepted, the CF- groups in scope."""
    facts = Facts(
        account_id=ACCT, expected_url=URL, version="2026.5.6",
        providers=[{"pk": 3, "name": "Cloudflare SCIM", "url": URL}],
        matches=[{"pk": 3, "name": "Cloudflare SCIM", "url": URL, "dry_run": False, "compatibility_mode": "default"}],
        provider={"pk": 3, "name": "Cloudflare SCIM", "url": URL, "dry_run": False, "compatibility_mode": "default"},
        application={"slug": "cloudflare-dashboard", "name": "Cloudflare dashboard", "as": "backchannel"},
        applications=[{"slug": "cloudflare-dashboard", "name": "Cloudflare dashboard", "provider": None, "backchannel_providers": [3]}],
        token_check="accepted", token_detail="HTTP 200",
        cf_groups=[CF_ADMIN, CF_DNS], scope=[CF_ADMIN, CF_DNS],
        sync_status={"is_running": False, "last_successful_sync": "2026-05-01T00:00:00Z", "last_sync_status": "done"},
        default_mappings={"user": "pm-user", "group": "pm-group"},
    )
    return dataclasses.replace(facts, **changes)


def codes(findings, severity=None):
    return sorted(f.code for f in findings if severity is None or f.severity == severity)


def test_a_working_setup_has_no_findings():
    assert assess(healthy()) == []


def test_every_finding_is_one_line_with_a_fix():
    bad = healthy(version="2024.6.0", token_check="rejected", token_detail="HTTP 401", application=None, scope=[],
                  sync_status={"is_running": False, "last_sync_status": "error"}, error_lines=["error: Failed to sync group"],
                  provider={**healthy().provider, "dry_run": True, "compatibility_mode": "aws"}, custom_group_mappings=["rename"])
    findings = assess(bad)
    assert len(findings) >= 8
    for f in findings:
        assert f.message and f.action and "\n" not in f.message + f.action


def test_no_provider_for_this_account_names_the_url_and_near_misses():
    other = f"https://api.cloudflare.com/client/v4/accounts/{'f' * 32}/scim/v2"
    findings = assess(healthy(provider=None, matches=[], providers=[{"pk": 9, "name": "Old", "url": other}]))
    assert codes(findings) == ["no_scim_provider"]
    assert URL in findings[0].message and other in findings[0].message and "--fix" in findings[0].action


def test_a_provider_not_attached_never_syncs():
    findings = assess(healthy(application=None, sync_status={"is_running": False}))
    assert codes(findings, "error") == ["provider_not_attached"]
    assert "never_synced" not in codes(findings)  # said once, by the cause


@pytest.mark.parametrize("check, code, severity", [
    ("rejected", "scim_token_rejected", "error"), ("unreachable", "scim_url_unreachable", "error"),
    ("write_only", "scim_token_unchecked", "info"), ("not_token_auth", "scim_not_token_auth", "warning"),
])
def test_the_token_check(check, code, severity):
    assert codes(assess(healthy(token_check=check)), severity) == [code]


@pytest.mark.parametrize("version, expected", [
    ("2024.6.4", {"authentik_too_old_for_idp_mode", "every_group_syncs"}),  # no single-object sync: idp mode impossible
    ("2024.8.0", {"every_group_syncs"}),
    ("2025.12.1", {"every_group_syncs"}),  # no group_filters before 2026.2: every group syncs
    ("2026.2.0", set()),
    ("2026.8.2", set()),
    ("2026.11.0", {"authentik_newer_than_known"}),  # may delete out-of-scope groups
    (None, {"authentik_version_unknown"}),
])
def test_version_dependent_behaviour(version, expected):
    has_filters = version_at_least(version, "2026.2")
    assert set(codes(assess(healthy(version=version, scope=[CF_ADMIN, CF_DNS] if has_filters else None)))) == expected


def test_the_report_says_what_the_version_can_do():
    from migrate.idp.check import behaviours

    assert behaviours("2024.6.0") == {"single_object_sync": False, "tasks_api": False, "group_filters": False, "token_readable": True}
    assert behaviours("2026.5.6") == {"single_object_sync": True, "tasks_api": True, "group_filters": True, "token_readable": True}
    assert behaviours("2026.8.0")["token_readable"] is False and behaviours(None)["token_readable"] is True


def test_dry_run_means_nothing_reaches_cloudflare():
    findings = assess(healthy(provider={**healthy().provider, "dry_run": True}))
    assert codes(findings) == ["dry_run_on"] and "nothing reaches Cloudflare" in findings[0].message


def test_scope_empty_syncs_every_group_and_cf_groups_out_of_scope_are_named():
    assert codes(assess(healthy(scope=[]))) == ["syncs_all_groups"]
    findings = assess(healthy(scope=[CF_ADMIN]))
    assert codes(findings) == ["cf_group_out_of_scope"] and findings[0].subject == CF_DNS["name"]


def test_sync_failures_and_their_log_lines():
    findings = assess(healthy(sync_status={"is_running": False, "last_sync_status": "error"},
                              error_lines=["error: Failed to sync group CF-x due to error: HTTP 401", "warning: skipped user"]))
    assert codes(findings) == ["last_sync_failed", "sync_error", "sync_error"]
    assert [f.severity for f in findings if f.code == "sync_error"] == ["error", "warning"]
    assert codes(assess(healthy(sync_status={"is_running": False, "last_sync_status": "warning"}))) == ["last_sync_warnings"]
    assert codes(assess(healthy(sync_status={"is_running": False}))) == ["never_synced"]


def test_several_providers_for_one_account():
    facts = healthy()
    facts.matches = facts.matches + [{"pk": 4, "name": "Copy", "url": URL}]
    assert codes(assess(facts)) == ["several_scim_providers"]


@pytest.mark.parametrize("a, b, same", [
    (URL, URL + "/", True), (URL, URL.replace("api.cloudflare.com", "API.Cloudflare.COM"), True),
    (URL, URL.replace("https://api.cloudflare.com", "https://api.cloudflare.com:443"), True),
    (URL, URL.replace(ACCT, "f" * 32), False), (URL, URL + "/Groups", False), (None, URL, False),
])
def test_provider_urls_match_ignoring_slash_host_case_and_default_port(a, b, same):
    assert same_url(a, b) is same


# -- what --fix would do (pure) --------------------------------------------------------------------


def test_fix_without_a_provider_needs_the_scim_token():
    with pytest.raises(UsageProblem, match="CLOUDFLARE_SCIM_TOKEN"):
        plan_fix(healthy(provider=None, matches=[], application=None))


def test_fix_creates_the_provider_scoped_to_the_cf_groups_and_the_application():
    steps, _ = plan_fix(healthy(provider=None, matches=[], application=None, applications=[]), scim_token="scim-secret")
    assert [s.kind for s in steps] == ["create_scim_provider", "create_application"]
    provider, app = steps
    assert provider.request == {"name": "Cloudflare SCIM", "url": URL, "auth_mode": "token", "token": "scim-secret",
                                "property_mappings": ["pm-user"], "property_mappings_group": ["pm-group"],
                                "group_filters": ["uuid-admin", "uuid-dns"]}
    assert app.request == {"name": "Cloudflare dashboard", "slug": "cloudflare-dashboard", "backchannel_providers": ["$idp.provider"]}
    assert all(s.id.startswith("idp.") for s in steps)  # one group for rollback: undone newest first
    assert "scim-secret" not in repr(secret_free(provider.request, "scim-secret"))


def test_fix_on_a_version_without_group_filters_says_every_group_will_sync():
    steps, _ = plan_fix(healthy(version="2025.10.2", provider=None, matches=[], application=None, applications=[]), scim_token="t")
    assert "group_filters" not in steps[0].request and "EVERY group" in steps[0].description


def test_fix_attaches_an_unattached_provider_to_the_existing_application():
    facts = healthy(application=None, applications=[{"slug": "cloudflare-dashboard", "name": "CF", "provider": None, "backchannel_providers": [8]}])
    steps, _ = plan_fix(facts)
    assert [(s.kind, s.request) for s in steps] == [
        ("attach_backchannel_provider", {"slug": "cloudflare-dashboard", "provider": 3, "backchannel_providers": [8, 3]})]
    with pytest.raises(UsageProblem, match="no Authentik application with slug 'nope'"):
        plan_fix(facts, application="nope")


def test_fix_leaves_what_only_a_person_should_change():
    steps, left = plan_fix(healthy(provider={**healthy().provider, "dry_run": True}, token_check="rejected"))
    assert steps == [] and codes(left) == ["dry_run_on", "scim_token_rejected"]


# -- the command, against the Cloudflare sandbox and the Authentik emulator ------------------------

import contextlib  # noqa: E402
import json  # noqa: E402
import sqlite3  # noqa: E402

from click.testing import CliRunner  # noqa: E402

from migrate.cli import cli  # noqa: E402
from migrate.sandbox import Sandbox  # noqa: E402
from migrate.sandbox.authentik import AuthentikSandbox  # noqa: E402
from migrate.sandbox.seeds import demo_seed  # noqa: E402

WRITES = ("POST", "PUT", "PATCH", "DELETE")
SCIM_TOKEN = "cf-scim-token-for-the-new-provider-0123456789"


@contextlib.contextmanager
def pair(**options):
    with Sandbox(seed=demo_seed(), rate_limit=None) as cf, AuthentikSandbox(cloudflare=cf, **options) as ak:
        yield cf, ak


def vgmigrate(cf, ak, db, *args, expect=0, **env):
    base = {"CLOUDFLARE_API_TOKEN": cf.token, "CLOUDFLARE_ACCOUNT_ID": cf.account_id, "CLOUDFLARE_BASE_URL": cf.base_url,
            "VGMIGRATE_DB": str(db), "AUTHENTIK_URL": ak.base_url.removesuffix("/api/v3"), "AUTHENTIK_TOKEN": ak.token,
            "CLOUDFLARE_SCIM_TOKEN": None}
    result = CliRunner().invoke(cli, [str(a) for a in args], env={**base, **env}, catch_exceptions=False)
    assert result.exit_code == expect, f"{args} exited {result.exit_code}:\n{result.output}"
    for secret in (cf.token, ak.token, SCIM_TOKEN):
        assert secret not in result.output
    return result


def ak_writes(ak):
    return [c for c in ak.calls if c[0] in WRITES]


def test_check_of_the_seeded_pair_passes_and_changes_nothing(tmp_path):
    with pair() as (cf, ak):
        result = vgmigrate(cf, ak, tmp_path / "inv.db", "idp", "check", "--json")
        report = json.loads(result.stdout)
        assert report["ok"] and report["provider"]["pk"] == ak.provider_id and report["token_check"] == "accepted"
        assert report["application"]["as"] == "backchannel" and "token" not in report["provider"]
        # the CF- groups and the SCIM-managed User Group's (out of scope, 2026.2.2+ would delete it)
        assert {g["name"] for g in report["scope"]} == {g["name"] for g in report["cf_groups"]} | {"Security Team"}
        assert not ak_writes(ak) and not [c for c in cf.calls if c[0] in WRITES]


def test_a_provider_not_attached_is_one_line_and_exit_1(tmp_path):
    with pair(attached=False) as (cf, ak):
        result = vgmigrate(cf, ak, tmp_path / "inv.db", "idp", "check", expect=1)
        assert "error    provider_not_attached: SCIM provider 'Cloudflare SCIM' is not attached" in result.output
        assert result.output.strip().splitlines()[-1].startswith("Error: 1 problem(s) in the Authentik setup")
        assert not ak_writes(ak)


def test_a_token_cloudflare_rejects_and_the_sync_errors_it_causes(tmp_path):
    with pair(provider_token="not-the-cloudflare-token") as (cf, ak):
        # A membership change pushes at once; Cloudflare refuses the token and the task logs it.
        group = next(g for g in ak.state.groups.values() if g["name"].endswith(" - Administrator"))
        user = next(u for u in ak.state.users.values() if u["pk"] not in group["users"] and u["username"] != "akadmin")
        from migrate.idp.authentik import AuthentikClient

        AuthentikClient.connect(ak.base_url, ak.token).add_user(group["pk"], user["pk"])
        # The push runs later, in Authentik's worker: the admin checks once it has been tried.
        deadline = time.monotonic() + 10
        while not any(t["aggregated_status"] == "warning" for t in ak.state.tasks) and time.monotonic() < deadline:
            time.sleep(0.05)
        result = vgmigrate(cf, ak, tmp_path / "inv.db", "idp", "check", "--json", expect=1)
        report = json.loads(result.stdout)
        found = {f["code"] for f in report["findings"]}
        assert {"scim_token_rejected", "sync_error"} <= found and report["token_check"] == "rejected"
        assert "not-the-cloudflare-token" not in result.output


def test_on_2026_8_the_token_cannot_be_checked(tmp_path):
    with pair(version="2026.8.1") as (cf, ak):
        result = vgmigrate(cf, ak, tmp_path / "inv.db", "idp", "check", "--json")
        report = json.loads(result.stdout)
        assert report["token_check"] == "write_only" and report["ok"]
        assert not any("ServiceProviderConfig" in c[1] for c in cf.calls)


def test_an_empty_scope_syncs_every_group(tmp_path):
    with pair(scope="all") as (cf, ak):
        report = json.loads(vgmigrate(cf, ak, tmp_path / "inv.db", "idp", "check", "--json").stdout)
        assert "syncs_all_groups" in {f["code"] for f in report["findings"]}


@pytest.mark.parametrize("env, expect, message", [
    ({"AUTHENTIK_URL": None}, 2, "no Authentik URL; set AUTHENTIK_URL"),
    ({"AUTHENTIK_TOKEN": None}, 2, "no Authentik token; set AUTHENTIK_TOKEN"),
    ({"AUTHENTIK_TOKEN": "wrong-token"}, 1, "Authentik API GET /core/users/me/ failed with HTTP 403"),
])
def test_bad_authentik_settings_are_one_line_and_change_nothing(tmp_path, env, expect, message):
    with pair() as (cf, ak):
        result = vgmigrate(cf, ak, tmp_path / "inv.db", "idp", "check", "--fix", "--yes", expect=expect, **env)
        assert result.output.startswith(f"Error: {message}") and result.output.count("\n") == 1
        assert not ak_writes(ak)


def test_fix_attaches_the_provider_and_rollback_detaches_it(tmp_path):
    db = tmp_path / "inv.db"
    with pair(attached=False) as (cf, ak):
        result = vgmigrate(cf, ak, db, "idp", "check", "--fix", "--yes")
        assert "attach the provider to application 'cloudflare-dashboard'" in result.output
        run_id = result.output.split("undo with: vgmigrate rollback --run ")[1].split()[0]
        assert ak.state.applications["cloudflare-dashboard"]["backchannel_providers"] == [ak.provider_id]
        vgmigrate(cf, ak, db, "idp", "check")  # now clean
        vgmigrate(cf, ak, db, "rollback", "--run", run_id, "--yes")
        assert ak.state.applications["cloudflare-dashboard"]["backchannel_providers"] == []
        vgmigrate(cf, ak, db, "idp", "check", expect=1)


def test_fix_creates_provider_and_application_without_journaling_the_token(tmp_path):
    db = tmp_path / "inv.db"
    with pair(provider=False) as (cf, ak):
        result = vgmigrate(cf, ak, db, "idp", "check", "--fix", "--yes", expect=2)
        assert "CLOUDFLARE_SCIM_TOKEN" in result.output and not ak_writes(ak)

        # A new provider has no link to the CF- groups another one pushed: the fix links each to the
        # Cloudflare group of the same name, so a cutover's removals reach them.
        result = vgmigrate(cf, ak, db, "idp", "check", "--fix", "--yes", CLOUDFLARE_SCIM_TOKEN=cf.token)
        assert "cf_group_not_linked" not in result.output
        run_id = result.output.split("undo with: vgmigrate rollback --run ")[1].split()[0]
        providers = list(ak.state.providers.values())
        assert [p["url"] for p in providers] == [f"{cf.base_url}/accounts/{cf.account_id}/scim/v2"]
        assert ak.state.applications["cloudflare-dashboard"]["backchannel_providers"] == [providers[0]["pk"]]
        journal = sqlite3.connect(db).execute("select kind, request, response from actions where run_id = ?", [run_id]).fetchall()
        assert [row[0] for row in journal] == ["create_scim_provider", "create_application"] + ["link_cf_group"] * 8
        linked = {link["group"]: link["scim_id"] for link in ak.state.group_links.values()}
        system = {g["displayName"]: gid for gid, g in cf.state.scim_groups.items()}
        named = {ak.state.groups[g]["name"]: i for g, i in linked.items()}
        assert len(named) == 8 and all(system[name] == scim_id for name, scim_id in named.items())
        assert cf.token not in db.read_bytes().decode("latin-1")

        vgmigrate(cf, ak, db, "rollback", "--run", run_id, "--yes")
        assert not ak.state.providers and "cloudflare-dashboard" not in ak.state.applications


@pytest.mark.parametrize("version, codes_expected", [
    ("2024.8.3", {"every_group_syncs"}),  # legacy sync status shape, no group_filters
    ("2025.10.2", {"every_group_syncs"}),
    ("2026.2.1", set()),
])
def test_fix_and_check_on_older_versions(tmp_path, version, codes_expected):
    with pair(version=version, attached=False) as (cf, ak):
        vgmigrate(cf, ak, tmp_path / "inv.db", "idp", "check", "--fix", "--yes")
        # The full sync after the fix: the schedule's send from 2025.8, else an unchanged save of the provider.
        started = [c[:2] for c in ak_writes(ak) if "/providers/scim/" in c[1] or "/tasks/schedules/" in c[1]]
        assert started == ([("POST", c[1]) for c in ak.calls if c[1].endswith("/send/")] if version_at_least(version, "2025.8")
                           else [("PATCH", f"/api/v3/providers/scim/{ak.provider_id}/")])
        report = json.loads(vgmigrate(cf, ak, tmp_path / "inv.db", "idp", "check", "--json").stdout)
        assert {f["code"] for f in report["findings"]} == codes_expected
        assert report["sync_status"]["last_sync_status"] in ("done", "info")


def test_cf_groups_the_provider_never_linked_are_found_and_linked_by_fix(tmp_path):
    """The provider did not push these CF- groups (another one did, before end of life), and
    Authentik neither discovers nor adopts them: a cutover could not reach them. --fix links each
    to the Cloudflare group of the same name; its rollback unlinks them."""
    db = tmp_path / "inv.db"
    with pair(linked=False) as (cf, ak):
        found = vgmigrate(cf, ak, db, "idp", "check", "--json", expect=1)
        report = json.loads(found.stdout)
        assert [f["code"] for f in report["findings"] if f["severity"] == "error"] == ["cf_group_not_linked"]
        fixed = vgmigrate(cf, ak, db, "idp", "check", "--fix", "--yes")  # the check after the fix passes
        assert "cf_group_not_linked" not in fixed.output.split("undo with: vgmigrate rollback --run ")[1]
        system = {g["displayName"]: gid for gid, g in cf.state.scim_groups.items()}
        cf_groups = {g["pk"]: g["name"] for g in ak.state.groups.values() if g["name"].upper().startswith("CF-")}
        links = {link["group"]: link["scim_id"] for link in ak.state.group_links.values() if link["group"] in cf_groups}
        assert len(links) == len(cf_groups) and all(system[cf_groups[g]] == i for g, i in links.items())
        run_id = fixed.output.split("undo with: vgmigrate rollback --run ")[1].split()[0]
        vgmigrate(cf, ak, db, "rollback", "--run", run_id, "--yes")
        assert not [link for link in ak.state.group_links.values() if link["group"] in cf_groups]
