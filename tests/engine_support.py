"""Shared helpers for the end-to-end tests: run the CLI against an in-process sandbox."""

import json

from click.testing import CliRunner

from migrate.cli import cli
from migrate.cloudflare import CloudflareClient
from migrate.inventory import Inventory

WRITES = ("POST", "PUT", "PATCH", "DELETE")


def env_for(sb, db_path):
    return {
        "CLOUDFLARE_API_TOKEN": sb.token,
        "CLOUDFLARE_ACCOUNT_ID": sb.account_id,
        "CLOUDFLARE_BASE_URL": sb.base_url,
        "VGMIGRATE_DB": str(db_path),
    }


def run(sb, db_path, *args, expect=0):
    result = CliRunner().invoke(cli, [str(a) for a in args], env=env_for(sb, db_path), catch_exceptions=False)
    assert result.exit_code == expect, f"{args} exited {result.exit_code}:\n{result.output}"
    return result


def client_for(sb):
    return CloudflareClient.connect(sb.base_url, sb.token, sb.account_id)


def writes(sb):
    return [c for c in sb.calls if c[0] in WRITES]


def iam_state(sb):
    """What a migration changes: user groups (name, policies, members) and resource groups."""
    snap = sb.state.snapshot()
    scope_of = {r["id"]: json.dumps(r["scope"], sort_keys=True) for r in snap["resource_groups"]}
    groups = sorted(
        (g["name"], json.dumps(_policy_keys(g["policies"], scope_of)), tuple(sorted(g["members"])))
        for g in snap["user_groups"]
    )
    rgs = sorted((r["name"] or "", scope_of[r["id"]]) for r in snap["resource_groups"])
    return {"user_groups": groups, "resource_groups": rgs}


def _policy_keys(policies, scope_of):
    # Resource groups by scope, not id: a re-created resource group gets a new id.
    return sorted(
        (p["access"], sorted(pg["id"] for pg in p["permission_groups"]), sorted(scope_of.get(rg["id"], rg["id"]) for rg in p["resource_groups"]))
        for p in policies
    )


def open_inventory(db_path):
    return Inventory(db_path)


# ---- the IdP-managed path: the Cloudflare sandbox and an IdP emulator beside it ---------------


def idp_cli(cf, idp, db_path, *args):
    """Run vgmigrate with the variables of both sandboxes (the IdP's from its `environment()`)."""
    env = {**env_for(cf, db_path), **idp.environment()}
    return CliRunner().invoke(cli, [str(a) for a in args], env=env, catch_exceptions=False)


def succeeded(result, what):
    assert result.exit_code == 0, f"{what} exited {result.exit_code}:\n{result.output}"
    return result


def legacy_roles(cf):
    """{member id: the roles Cloudflare gives them directly or through virtual groups}."""
    return {m["id"]: frozenset(r if isinstance(r, str) else r.get("id") for r in m["roles"]) for m in cf.state.snapshot()["members"]}
