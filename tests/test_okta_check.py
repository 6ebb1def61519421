"""`vgmigrate idp check [--fix]` for Okta: the pure assessment over facts, then gather, fix and its
rollback against the Cloudflare sandbox paired with the Okta emulator."""

import dataclasses

import pytest

from migrate.cloudflare import CloudflareClient
from migrate.idp.okta import OktaClient
from migrate.idp.okta_check import Facts, assess, apply_fix, check, plan_fix, render
from migrate.inventory import Inventory
from migrate.rollback import rollback_run
from migrate.runs import NOTHING_TO_DO, UNDONE
from migrate.sandbox.okta import OktaSandbox

ACCT = "0" * 31 + "1"
URL = f"https://api.cloudflare.com/client/v4/accounts/{ACCT}/scim/v2"
CF_ADMIN = {"pk": "00gadmin", "name": f"CF-{ACCT} - Administrator"}
CF_DNS = {"pk": "00gdns", "name": f"CF-{ACCT} - DNS"}
APP = {"id": "0oaapp", "label": "Cloudflare Dashboard", "name": "cloudflare_dashboard", "features": ["GROUP_PUSH", "PUSH_NEW_USERS"]}


def healthy(**changes):
    """Facts of a set-up that works: the app provisions this account, Group Push on, both CF- groups pushed."""
    facts = Facts(
        account_id=ACCT, expected_url=URL,
        apps=[{"id": "0oaapp", "label": "Cloudflare Dashboard", "url": URL, "status": "ENABLED"}],
        matches=[{"id": "0oaapp", "label": "Cloudflare Dashboard", "url": URL, "status": "ENABLED"}],
        app=APP, connection={"status": "ENABLED", "baseUrl": URL}, create_users=True, deactivate_users=True, group_push=True,
        cf_groups=[CF_ADMIN, CF_DNS], assigned=[CF_ADMIN["pk"], CF_DNS["pk"]],
        mappings=[{"id": f"gPm{g['pk']}", "group": g["pk"], "name": g["name"], "status": "ACTIVE", "lastPush": "2026-12-01T00:00:00.000Z",
                   "errorSummary": ""} for g in (CF_ADMIN, CF_DNS)],
    )
    return dataclasses.replace(facts, **changes)


def codes(findings, severity=None):
    return sorted(f.code for f in findings if severity is None or f.severity == severity)


def test_a_working_setup_has_no_findings():
    assert assess(healthy()) == []


def test_every_finding_is_one_line_with_a_fix():
    bad = healthy(connection={"status": "DISABLED"}, create_users=False, deactivate_users=False,
                  mappings=[dict(healthy().mappings[0], status="ERROR", errorSummary="Failed: HTTP 409"),
                            dict(healthy().mappings[1], status="INACTIVE")],
                  error_lines=["2026-12-01T00:00:00 Push group: HTTP 409"],
                  matches=healthy().matches * 2)
    findings = assess(bad)
    assert codes(findings) == sorted(["provisioning_off", "create_users_off", "deactivate_users_off", "push_mapping_error",
                                      "push_mapping_inactive", "provisioning_error", "several_okta_apps"])
    for f in findings:
        assert f.message and f.action and "\n" not in f.message + f.action


def test_no_app_for_this_account_names_the_url_and_near_misses():
    other = f"https://api.cloudflare.com/client/v4/accounts/{'f' * 32}/scim/v2"
    findings = assess(healthy(app=None, matches=[], apps=[{"id": "0oaold", "label": "Old", "url": other, "status": "ENABLED"}]))
    assert codes(findings) == ["no_okta_app"]
    assert URL in findings[0].message and other in findings[0].message and "OKTA_APP_ID" in findings[0].action


def test_group_push_off_is_the_one_thing_to_fix_first():
    assert codes(assess(healthy(group_push=False, mappings=[]))) == ["group_push_off"]


def test_a_cf_group_with_no_mapping_is_an_error_the_fix_links_when_okta_imported_its_group():
    unmapped = healthy(mappings=healthy().mappings[:1], unmapped=[CF_DNS], linkable={CF_DNS["pk"]: "00gappdns"})
    findings = assess(unmapped)
    assert codes(findings) == ["cf_group_not_pushed"] and "--fix" in findings[0].action
    steps, left = plan_fix(unmapped)
    assert [(s.kind, s.target, s.request) for s in steps] == [
        ("link_push_mapping", CF_DNS["name"], {"app": "0oaapp", "group": CF_DNS["pk"], "target": "00gappdns"})]
    assert left == []


def test_a_cf_group_okta_never_imported_is_left_for_a_person():
    facts = healthy(mappings=[], unmapped=[CF_ADMIN, CF_DNS], linkable={CF_DNS["pk"]: "00gappdns"})
    finding = assess(facts)[0]
    assert "Import Groups" in finding.action and "1 can be linked now" in finding.message
    steps, left = plan_fix(facts)
    assert [s.target for s in steps] == [CF_DNS["name"]] and codes(left) == ["cf_group_not_pushed"]


def test_nothing_is_planned_when_group_push_is_off():
    steps, left = plan_fix(healthy(group_push=False, unmapped=[CF_DNS], linkable={CF_DNS["pk"]: "x"}))
    assert steps == [] and codes(left) == ["group_push_off"]


# -- against the emulator ---------------------------------------------------------------------------


def clients(cf, okta):
    cloudflare = CloudflareClient.connect(cf.base_url, cf.token, cf.account_id)
    cloudflare.idp = OktaClient.connect(okta.base_url, api_token=okta.token)
    return cloudflare


def test_the_seeded_org_checks_clean_and_renders_every_mapping(sandbox):
    with OktaSandbox(cloudflare=sandbox) as okta:
        cloudflare = clients(sandbox, okta)
        report = check(cloudflare, cloudflare.idp)
        assert report.ok and report.findings == [], render(report)
        text = render(report)
        n = len(report.facts.cf_groups)
        assert "group push:   on" in text and f"{n} active of {n} CF- group(s); 0 without one" in text
        assert all(m["status"] == "ACTIVE" for m in report.facts.mappings) and not report.facts.unmapped
        assert report.as_json()["ok"] is True


def test_a_push_that_failed_shows_with_its_reason_from_the_mapping_and_the_log(sandbox):
    with OktaSandbox(cloudflare=sandbox, push_delay=(0.0, 0.01)) as okta:
        cloudflare = clients(sandbox, okta)
        okta_client = cloudflare.idp
        group = okta_client.cf_groups()[0]
        mapping = okta_client.mapping_for(okta.app_id, group["pk"])
        with okta.state.lock:  # the Cloudflare group went away behind Okta's back
            okta.state.apps[okta.app_id]["mappings"][mapping["id"]]["scim_id"] = "cloudflare-v1-gone"
        okta_client.remove_user(group["pk"], group["users"][0])
        okta.settle()
        report = check(cloudflare, okta_client)
        assert "push_mapping_error" in codes(report.findings) and "provisioning_error" in codes(report.findings)
        assert "not found" in render(report)


def test_fix_links_the_unpushed_cf_groups_and_rollback_unlinks_them(sandbox, tmp_path):
    with OktaSandbox(cloudflare=sandbox, mapped=False, push_delay=(0.0, 0.01)) as okta:
        cloudflare = clients(sandbox, okta)
        before = check(cloudflare, cloudflare.idp)
        assert codes(before.findings) == ["cf_group_not_pushed"] and "--fix" in before.findings[0].action
        steps, left = plan_fix(before.facts)
        assert len(steps) == len(before.facts.unmapped) and left == []
        inventory = Inventory(tmp_path / "inv.db")
        run_id, done = apply_fix(cloudflare, inventory, steps)
        assert len(done) == len(steps)
        okta.settle()
        after = check(cloudflare, cloudflare.idp)
        assert after.ok and not after.facts.unmapped, render(after)
        assert apply_fix(cloudflare, inventory, plan_fix(after.facts)[0])[1] == []  # nothing left to do
        result = rollback_run(cloudflare, inventory, run_id)
        assert result.status == UNDONE
        okta.settle()
        again = check(cloudflare, cloudflare.idp)
        assert codes(again.findings) == ["cf_group_not_pushed"]
        with sandbox.state.lock:  # the CF- system groups are still there: the mapping went, the group stayed
            assert all(g["displayName"] for g in sandbox.state.scim_groups.values())
            assert {g["displayName"] for g in sandbox.state.scim_groups.values()} >= {g["name"] for g in again.facts.unmapped
                                                                                    if g["name"].startswith("CF-")}
        assert rollback_run(cloudflare, inventory, run_id).status == NOTHING_TO_DO  # twice = once


def test_a_cutover_removal_reaches_cloudflare_only_through_a_mapping(sandbox, tmp_path):
    with OktaSandbox(cloudflare=sandbox, mapped=False, push_delay=(0.0, 0.01)) as okta:
        cloudflare = clients(sandbox, okta)
        okta_client = cloudflare.idp
        group = next(g for g in okta_client.cf_groups() if len(g["users"]) > 1)
        scim_group = next(gid for gid, g in sandbox.state.scim_groups.items() if g["displayName"] == group["name"])

        def in_cloudflare(user_pk):
            email = next(u["email"] for u in group["users_obj"] if u["pk"] == user_pk)
            with sandbox.state.lock:
                return any(u["userName"].casefold() == email.casefold() and scim_group in u["groups"]
                           for u in sandbox.state.scim_users.values())

        first, second = group["users"][:2]
        okta_client.set_scope(okta.app_id, okta_client.scope_of(okta.app_id) + [okta_client.group_by_name("Contractors")["pk"]])
        okta_client.add_user(okta_client.group_by_name("Contractors")["pk"], first)  # stays assigned to the app
        okta_client.remove_user(group["pk"], first)
        okta.settle()
        assert in_cloudflare(first)  # no mapping: the removal never reached Cloudflare
        steps, _ = plan_fix(check(cloudflare, okta_client).facts)
        apply_fix(cloudflare, Inventory(tmp_path / "inv.db"), steps)
        okta.settle()
        okta_client.add_user(okta_client.group_by_name("Contractors")["pk"], second)
        okta_client.remove_user(group["pk"], second)
        okta.settle()
        assert not in_cloudflare(second)


def test_an_org_whose_cf_groups_were_never_imported_leaves_the_fix_to_a_person(sandbox):
    with OktaSandbox(cloudflare=sandbox, mapped=False, imported=False) as okta:
        cloudflare = clients(sandbox, okta)
        report = check(cloudflare, cloudflare.idp)
        steps, left = plan_fix(report.facts)
        assert steps == [] and codes(left) == ["cf_group_not_pushed"] and "Import Groups" in left[0].action


@pytest.mark.parametrize("options, code", [({"provisioning": False}, "no_okta_app"), ({"group_push": False}, "group_push_off")])
def test_an_org_that_cannot_push_is_an_error(sandbox, options, code):
    with OktaSandbox(cloudflare=sandbox, **options) as okta:
        cloudflare = clients(sandbox, okta)
        assert code in codes(check(cloudflare, cloudflare.idp).problems)


def test_the_cli_fixes_and_says_what_okta_does_next(sandbox, tmp_path):
    from click.testing import CliRunner

    from migrate.cli import cli

    with OktaSandbox(cloudflare=sandbox, mapped=False, push_delay=(0.0, 0.01)) as okta:
        env = {"CLOUDFLARE_API_TOKEN": sandbox.token, "CLOUDFLARE_ACCOUNT_ID": sandbox.account_id,
               "CLOUDFLARE_BASE_URL": sandbox.base_url, "VGMIGRATE_DB": str(tmp_path / "v.db"), **okta.environment()}
        assert CliRunner().invoke(cli, ["idp", "check"], env=env).exit_code == 1
        fixed = CliRunner().invoke(cli, ["idp", "check", "--fix", "--yes"], env=env)
        assert fixed.exit_code == 0, fixed.output
        assert "Okta pushes each linked group's members" in fixed.output and "full sync" not in fixed.output
        run_id = fixed.output.split("undo with: vgmigrate rollback --run ")[1].split()[0]
        undone = CliRunner().invoke(cli, ["rollback", "--run", run_id, "--yes"], env=env)
        assert undone.exit_code == 0, undone.output
        assert CliRunner().invoke(cli, ["idp", "check"], env=env).exit_code == 1
