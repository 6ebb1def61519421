"""`vgmigrate demo`: the whole migration against the embedded sandbox, each step explained."""

import importlib
import os
import time
from contextlib import contextmanager, nullcontext, redirect_stdout
from pathlib import Path

import click

from .errors import VgmigrateError
from .rehearsal import iam_state
from .sandbox import Sandbox
from .sandbox.seeds import demo_seed

STEPS = [
    ("scan", "Read the account, read-only: SCIM virtual groups and their members, account members, permission groups, existing User Groups.",
     ["scan"]),
    ("plan", "The dry run. A User Group named 'Administrator Read Only' already exists, so this plan adopts it (--on-existing adopt) and records its prior state for rollback.",
     ["plan", "--out", "{plan}", "--on-existing", "adopt"]),
    ("rehearse", "Apply, verify and roll back the plan on a private replica first: no request reaches the account.",
     ["rehearse", "{plan}"]),
    ("report", "The approval report an approver signs off (also as HTML: vgmigrate show plan.json --format html).",
     ["show", "{plan}", "--format", "markdown"]),
    ("apply", "Carry out exactly the approved plan: each call journaled before it is sent, groups created with their policy, then members.",
     ["apply", "{plan}", "--yes"]),
    ("verify", "Check live state member by member: everyone keeps at least the access their virtual groups gave them.",
     ["verify"]),
    ("plan again", "Planning again shows nothing to do: applying twice is applying once.",
     ["plan", "--on-existing", "adopt"]),
    ("rollback", "Undo the run from its journal, newest step first: created groups deleted, the adopted group's policies and members restored.",
     ["rollback", "--yes"]),
    ("history", "The audit trail of runs; `vgmigrate export` writes the full journal for an auditor.",
     ["history"]),
]


IDP_STEPS = [
    ("idp check", "The guide's setup and 'Verify the integration': what pushes from {idp} to Cloudflare points at this "
                  "account, is switched on, and what it pushes.",
     ["idp", "check"]),
    ("scan", "Read the IdP's own CF- groups and their users, and cross-check them with Cloudflare's SCIM view.",
     ["scan", "--source", "{source}"]),
    ("plan", "The dry run of the IdP-managed path: per virtual group a new {idp} group with its members, put in the "
             "push scope, pushed over SCIM, then its policy attached in Cloudflare. 'Administrator Read Only' is "
             "taken in Cloudflare, so that group gets a suffix (--on-existing suffix).",
     ["plan", "--mode", "idp", "--on-existing", "suffix", "--out", "{plan}"]),
    ("report", "The approval report, with the {idp} side.",
     ["show", "{plan}", "--format", "markdown"]),
    ("apply", "Carry out the plan: {idp} creates and pushes each group (locked to the IdP in Cloudflare); vgmigrate "
              "waits for it to arrive and attaches only the policy.",
     ["apply", "{plan}", "--yes"]),
    ("verify", "Check live state member by member.",
     ["verify"]),
    ("cutover", "Only now, after a clean verify: take the migrated members out of the old CF- groups in {idp}, so "
                "Cloudflare drops the legacy roles; the new groups keep granting them.",
     ["cutover", "--yes"]),
    ("rollback", "Undo it all from the journal: members back into the CF- groups first, then policies, then the new groups.",
     ["rollback", "--yes"]),
    ("history", "The audit trail of runs.",
     ["history"]),
]


# The emulator of each IdP: module, class. Each serves `environment()`, the variables that point vgmigrate at it.
IDP_SANDBOXES = {"authentik": ("migrate.sandbox.authentik", "AuthentikSandbox"), "okta": ("migrate.sandbox.okta", "OktaSandbox"),
                 "entra": ("migrate.sandbox.entra", "EntraSandbox")}
# What a real account needs set, per IdP (the emulators set more: their addresses).
REAL_VARIABLES = {"authentik": "AUTHENTIK_URL and AUTHENTIK_TOKEN", "okta": "OKTA_ORG_URL and OKTA_API_TOKEN",
                  "entra": "ENTRA_TENANT_ID, ENTRA_CLIENT_ID and ENTRA_CLIENT_SECRET"}


def run_demo(cli, workdir, mode="api", idp_source="authentik"):
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    paths = {"plan": str(workdir / "plan.json")}
    db = workdir / "vgmigrate.db"
    if db.exists():
        raise VgmigrateError(f"{workdir} already holds a demo inventory; pass another --dir")
    started = time.monotonic()
    steps = IDP_STEPS if mode == "idp" else STEPS
    with Sandbox(seed=demo_seed(), rate_limit=None) as sb, _idp_sandbox(sb, mode, idp_source) as ak, _environment(ak):
        click.secho(f"A Cloudflare sandbox is serving the demo account {sb.account_id} at {sb.base_url}.", bold=True)
        before = iam_state(sb.state.snapshot())
        base = ["--db", str(db), "--account", sb.account_id, "--token", sb.token, "--base-url", sb.base_url]
        words = {"idp": ak.name if ak else "", "source": idp_source}
        if ak:
            click.secho(f"{words['idp']} is emulated at {ak.base_url}, pushing to Cloudflare over SCIM.", bold=True)
            base += ["--idp", idp_source]
        for n, (title, explanation, args) in enumerate(steps, 1):
            command = [a.format(**paths, **words) for a in args]
            click.echo()
            click.secho(f"[{n}/{len(steps)}] {title}: vgmigrate {' '.join(command)}", bold=True)
            click.echo(explanation.format(**words))
            click.echo()
            code = cli.main(base + command, prog_name="vgmigrate", standalone_mode=False)
            if code not in (None, 0):
                raise VgmigrateError(f"the demo stopped at step {title!r} (exit {code})")
            if title == "report":
                for fmt, name in (("markdown", "report.md"), ("html", "report.html")):
                    with open(workdir / name, "w", encoding="utf-8") as out, redirect_stdout(out):
                        cli.main(base + ["show", paths["plan"], "--format", fmt], prog_name="vgmigrate", standalone_mode=False)
        calls, restored = len(sb.calls) + (len(ak.calls) if ak else 0), iam_state(sb.state.snapshot()) == before
    if not restored:
        raise VgmigrateError("the rollback did not restore the sandbox account exactly; this is a bug, please report it")
    click.echo()
    click.secho("Done.", bold=True)
    click.echo(f"The demo made {calls} API calls in {time.monotonic() - started:.1f} s; after the rollback the account's User Groups, policies and members are exactly as before.")
    click.echo(f"Its inventory, plan and reports are in {workdir} (report.html opens in a browser).")
    if mode == "idp":
        click.echo(f"For a real account: export CLOUDFLARE_API_TOKEN, CLOUDFLARE_ACCOUNT_ID, {REAL_VARIABLES[idp_source]}, "
                   "then vgmigrate idp check.")
    else:
        click.echo("For a real account: export CLOUDFLARE_API_TOKEN and CLOUDFLARE_ACCOUNT_ID, then vgmigrate scan.")



def _idp_sandbox(sb, mode, source):
    """The IdP's emulator beside the Cloudflare sandbox for `--mode idp`, else nothing."""
    if mode != "idp":
        return nullcontext()
    module, name = IDP_SANDBOXES[source]
    return getattr(importlib.import_module(module), name)(cloudflare=sb)


@contextmanager
def _environment(ak):
    """The emulated IdP's variables, set while the demo runs (the IdPs after Authentik take no options)."""
    added = ak.environment() if ak else {}
    saved = {k: os.environ.get(k) for k in added}
    os.environ.update(added)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
