"""`idp check` for Entra ID against the emulator: what it finds in a working, a broken and a
half-set-up tenant, each finding one line with its fix, and `--fix` assigning CF- groups in a
journaled run that rollback undoes."""

import pytest

from migrate.cloudflare import CloudflareClient
from migrate.idp import entra_check
from migrate.idp.entra import connect_from_env
from migrate.inventory import Inventory
from migrate.rollback import rollback_run
from migrate.sandbox.entra import FULL_ROLES, EntraSandbox

WRITES = ("POST", "PUT", "PATCH", "DELETE")


def run_check(sandbox, **options):
    with EntraSandbox(cloudflare=sandbox, **options) as emulator:
        cf = CloudflareClient.connect(sandbox.base_url, sandbox.token, sandbox.account_id)
        report = entra_check.check(cf, connect_from_env(emulator.environment()))
        writes = [c for c in emulator.calls if c[0] in WRITES and not c[1].endswith("/token")]
    assert writes == []  # a check changes nothing
    return report


def codes(report):
    return {f.code for f in report.findings}


def test_the_seeded_tenant_passes(sandbox):
    report = run_check(sandbox)
    assert report.ok, entra_check.render(report)
    assert report.facts.roles == sorted(FULL_ROLES) and {g["pk"] for g in report.facts.cf_groups} <= set(report.facts.assigned)
    assert "tenant_url_not_readable" in codes(report)


def test_every_finding_is_one_line_with_a_fix(sandbox):
    report = run_check(sandbox, assigned=False, roles=FULL_ROLES - {"AuditLog.Read.All"})
    assert report.findings
    for finding in report.findings:
        assert "\n" not in finding.message + finding.action and finding.action


def test_no_application_says_what_cloudflare_s_page_asks_for(sandbox):
    report = run_check(sandbox, app=False)
    assert "no_enterprise_application" in codes(report) and not report.ok
    assert report.facts.expected_url in next(f.action for f in report.findings if f.code == "no_enterprise_application")


def test_a_quarantined_job_is_an_error_with_its_reason(sandbox):
    report = run_check(sandbox, quarantined=True)
    finding = next(f for f in report.findings if f.code == "job_quarantined")
    assert finding.severity == "error" and "Secret Token" in finding.message + finding.action


@pytest.mark.parametrize("missing", ["AuditLog.Read.All", "Synchronization.ReadWrite.All", "AppRoleAssignment.ReadWrite.All"])
def test_a_missing_permission_is_named(sandbox, missing):
    report = run_check(sandbox, roles=FULL_ROLES - {missing})
    assert any(f.code == "permission_missing" and f.subject == missing for f in report.findings)


def test_the_roles_decide_what_is_missing_and_broader_roles_cover_narrower():
    assert entra_check.missing_permissions(["Directory.ReadWrite.All", "Application.ReadWrite.All", "AppRoleAssignment.ReadWrite.All",
                                            "Synchronization.ReadWrite.All", "AuditLog.Read.All"]) == []
    assert entra_check.missing_permissions([]) == list(entra_check.REQUIRED_PERMISSIONS)
    assert entra_check.missing_permissions(None) is None


def test_fix_assigns_the_unassigned_cf_groups_and_rollback_unassigns_them(sandbox, tmp_path):
    with EntraSandbox(cloudflare=sandbox) as emulator:
        sp = emulator.service_principal_id
        with emulator.state.lock:
            taken = sorted(a["id"] for a in emulator.state.assignments.values() if a["principalDisplayName"].startswith("CF-"))[:2]
            names = sorted(emulator.state.assignments[a]["principalDisplayName"] for a in taken)
            for a in taken:
                del emulator.state.assignments[a]
        cf = CloudflareClient.connect(sandbox.base_url, sandbox.token, sandbox.account_id)
        cf.idp = connect_from_env(emulator.environment())
        report = entra_check.check(cf, cf.idp)
        assert sorted(f.subject for f in report.findings if f.code == "cf_group_not_assigned") == names
        steps, left = entra_check.plan_fix(report.facts)
        assert sorted(s.target for s in steps) == names and left == []
        inventory = Inventory(str(tmp_path / "inv.db"))
        run_id, done = entra_check.apply_fix(cf, inventory, steps)
        assert len(done) == 2 and entra_check.check(cf, cf.idp).ok
        assert {g["pk"] for g in report.facts.cf_groups} <= set(emulator.state.assigned_groups(sp))
        rollback_run(cf, inventory, run_id)
        again = entra_check.check(cf, cf.idp)
        assert sorted(f.subject for f in again.findings if f.code == "cf_group_not_assigned") == names
