"""`scan --source authentik`: Authentik's CF- groups as the source of virtual groups, and the
cross-check with Cloudflare's SCIM view. Pure parts first, then against the sandbox pair."""

import contextlib
import json

import pytest
from click.testing import CliRunner

from migrate.cli import cli
from migrate.cloudflare import CloudflareClient
from migrate.errors import CloudflareError
from migrate.inventory import Inventory
from migrate.sandbox import Sandbox
from migrate.sandbox.authentik import AuthentikSandbox
from migrate.sandbox.seeds import demo_seed
from migrate.scan import compare_views
from migrate.sources import VirtualGroup, from_idp

ACCT = "0" * 31 + "1"
ADMIN = f"CF-{ACCT} - Administrator"


def user(pk, email, active=True, username=None):
    return {"pk": pk, "username": username or email, "email": email, "is_active": active}


def test_from_authentik_keeps_cf_groups_with_active_members():
    groups = [
        {"pk": "g1", "name": ADMIN, "users": [1, 2, 3],
         "users_obj": [user(1, "A@Example.com"), user(2, "b@example.com", active=False), user(3, "", username="c@example.com")]},
        {"pk": "g2", "name": f"CF-{ACCT} - DNS", "users": [], "users_obj": []},  # empty: grants nothing
        {"pk": "g3", "name": "Engineering", "users": [1], "users_obj": [user(1, "a@example.com")]},  # not a virtual group
        {"pk": "g4", "name": f"CF-{ACCT} - Billing", "users": [2], "users_obj": [user(2, "b@example.com", active=False)]},
    ]
    (vg,) = from_idp(groups)
    assert (vg.id, vg.name, vg.member_emails) == ("g1", ADMIN, ("a@example.com", "c@example.com"))
    assert vg.raw["inactive_members"] == ["b@example.com"] and "users_obj" not in vg.raw


def test_from_authentik_reads_members_from_users_when_the_listing_left_them_out():
    groups = [{"pk": "g1", "name": ADMIN, "users": [1, 2], "users_obj": None}]
    (vg,) = from_idp(groups, [user(1, "a@example.com"), user(2, "b@example.com"), user(9, "z@example.com")])
    assert vg.member_emails == ("a@example.com", "b@example.com")


def test_compare_views_names_each_disagreement():
    ours = [VirtualGroup("g1", ADMIN, ("a@x.com", "b@x.com")), VirtualGroup("g2", f"CF-{ACCT} - DNS", ("a@x.com",))]
    theirs = [VirtualGroup("s1", ADMIN, ("b@x.com", "c@x.com")), VirtualGroup("s3", f"CF-{ACCT} - Billing", ("d@x.com",))]
    found = sorted((f.code, f.subject) for f in compare_views(ours, theirs))
    assert found == [
        ("cloudflare_group_not_in_idp", f"CF-{ACCT} - Billing"),
        ("cloudflare_member_not_in_idp", "c@x.com"),
        ("idp_group_not_in_cloudflare", f"CF-{ACCT} - DNS"),
        ("idp_member_not_in_cloudflare", "a@x.com"),
    ]
    assert compare_views(ours, ours) == []


# -- against the sandbox pair ------------------------------------------------------------------


@contextlib.contextmanager
def pair(**options):
    with Sandbox(seed=demo_seed(), rate_limit=None) as cf, AuthentikSandbox(cloudflare=cf, **options) as ak:
        yield cf, ak


def scan(cf, ak, db, *args, expect=0, **env):
    base = {"CLOUDFLARE_API_TOKEN": cf.token, "CLOUDFLARE_ACCOUNT_ID": cf.account_id, "CLOUDFLARE_BASE_URL": cf.base_url,
            "VGMIGRATE_DB": str(db), "AUTHENTIK_URL": ak.base_url, "AUTHENTIK_TOKEN": ak.token}
    result = CliRunner().invoke(cli, ["scan", *args], env={**base, **env}, catch_exceptions=False)
    assert result.exit_code == expect, result.output
    assert ak.token not in result.output and cf.token not in result.output
    return result


def recorded(db):
    inventory = Inventory(db)
    data = inventory.load_scan(inventory.last_scan()["id"])
    groups = sorted((g["name"], g["resolution"], g.get("permission_group_id")) for g in data["virtual_groups"])
    members = sorted((m["email"], m["member_id"]) for m in data["virtual_group_members"])
    return groups, members, sorted((f["code"], f["subject"]) for f in data["findings"])


def test_authentik_gives_the_same_records_and_findings_as_cloudflare_when_in_sync(tmp_path):
    with pair() as (cf, ak):
        scan(cf, ak, tmp_path / "cf.db", "--source", "cloudflare")
        result = scan(cf, ak, tmp_path / "ak.db", "--source", "authentik", "--json")
        assert recorded(tmp_path / "ak.db") == recorded(tmp_path / "cf.db")
        assert json.loads(result.stdout)["counts"]["virtual_groups"] == 8
        assert not [c for c in ak.calls if c[0] != "GET"]
        assert Inventory(tmp_path / "ak.db").last_scan()["source"] == "authentik"


def test_disagreements_between_authentik_and_cloudflare_become_findings(tmp_path):
    with pair() as (cf, ak):
        admin = next(g for g in ak.state.groups.values() if g["name"].endswith(f"{cf.account_id} - Administrator"))
        gone, *_ = admin["users"]
        newcomer = next(u for u in ak.state.users.values() if u["pk"] not in admin["users"] and "@" in u["username"])
        # Changed in Authentik's state directly: as if the sync had not run yet.
        admin["users"] = [pk for pk in admin["users"] if pk != gone] + [newcomer["pk"]]
        ak.state.add_group(f"CF-{cf.account_id} - Billing", users=[newcomer["pk"]])
        scan(cf, ak, tmp_path / "ak.db", "--source", "authentik")
        findings = {(code, subject) for code, subject in recorded(tmp_path / "ak.db")[2]}
        assert ("idp_member_not_in_cloudflare", newcomer["email"].lower()) in findings
        assert ("cloudflare_member_not_in_idp", ak.state.users[gone]["email"].lower()) in findings
        assert ("idp_group_not_in_cloudflare", f"CF-{cf.account_id} - Billing") in findings


def test_without_scim_read_access_the_cross_check_is_skipped_and_said(tmp_path, monkeypatch):
    class Refused:
        def start(self):
            return self

        def __iter__(self):
            raise CloudflareError(403, [{"code": 10000, "message": "Authentication error"}], method="GET", path="/scim/v2/Groups")

    monkeypatch.setattr(CloudflareClient, "scim_groups", lambda self, filter=None: Refused())
    with pair() as (cf, ak):
        scan(cf, ak, tmp_path / "ak.db", "--source", "authentik")
        codes = {code for code, _ in recorded(tmp_path / "ak.db")[2]}
        assert "scim_unreadable" in codes and not codes & {"idp_member_not_in_cloudflare", "cloudflare_group_not_in_idp"}
        assert len(recorded(tmp_path / "ak.db")[0]) == 8


@pytest.mark.parametrize("env, message", [
    ({"AUTHENTIK_URL": None}, "no Authentik URL; set AUTHENTIK_URL"),
    ({"AUTHENTIK_TOKEN": None}, "no Authentik token; set AUTHENTIK_TOKEN"),
])
def test_scan_from_authentik_without_its_settings_is_refused_before_any_call(tmp_path, env, message):
    with pair() as (cf, ak):
        calls = len(cf.calls)
        result = scan(cf, ak, tmp_path / "ak.db", "--source", "authentik", expect=2, **env)
        assert result.output == f"Error: {message}" + result.output.split(message, 1)[1]
        assert result.output.count("\n") == 1 and len(cf.calls) == calls and not ak.calls


def test_scan_with_a_wrong_authentik_token_records_nothing(tmp_path):
    with pair() as (cf, ak):
        result = scan(cf, ak, tmp_path / "ak.db", "--source", "authentik", expect=1, AUTHENTIK_TOKEN="wrong")
        assert "Authentik API GET /core/users/me/ failed with HTTP 403" in result.output  # checked before anything is read
        assert Inventory(tmp_path / "ak.db").last_scan() is None
