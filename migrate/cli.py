"""Command-line wiring only: options, prompts, output and exit codes. The work happens elsewhere."""

import functools
import importlib
import json
import os
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import click

from . import __version__
from .errors import Interrupted, UsageProblem, VgmigrateError
from .idp.base import IDPS, plan_idp_source
from .names import is_hex_id, quoted
from .runs import DONE, NOTHING_TO_DO, UNDONE

# Each command imports the modules it uses when it runs, for start-up time: `vgmigrate --help`
# and a usage error load none of them.

DEFAULT_BASE_URL = "https://api.cloudflare.com/client/v4"


@dataclass
class Settings:
    db_path: str
    account_id: str | None
    token: str | None
    base_url: str
    debug: bool
    authentik_url: str | None = None
    authentik_token: str | None = None
    idp: str | None = None  # authentik, okta or entra: which IdP, when the variables of more than one are set


class VgmigrateGroup(click.Group):
    """Turns expected failures into one line on stderr and a non-zero exit; --debug shows the traceback.

    `sandbox` is loaded when asked for: importing the emulator would add ~40 ms to every command's
    start-up."""

    def list_commands(self, ctx):
        return sorted({*super().list_commands(ctx), "sandbox"})

    def get_command(self, ctx, name):
        if name == "sandbox" and name not in self.commands:
            from .sandbox.cli import sandbox

            self.add_command(sandbox)
        return super().get_command(ctx, name)

    def invoke(self, ctx):
        try:
            try:
                return super().invoke(ctx)
            except (KeyboardInterrupt, click.Abort) as stop:  # Ctrl-C where the command says no more
                if isinstance(stop, click.Abort) and not isinstance(stop.__context__, KeyboardInterrupt):
                    raise  # "no" at a prompt; Ctrl-C at one is an Abort too, from a KeyboardInterrupt
                raise Interrupted("interrupted; run the command again (`vgmigrate status` says where the migration stands)") from None
        except VgmigrateError as err:
            if ctx.obj and ctx.obj.debug:
                raise
            click.echo(f"Error: {err}", err=True)
            ctx.exit(err.exit_code)


@click.group(cls=VgmigrateGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="vgmigrate")
@click.option(
    "--db",
    "db_path",
    envvar="VGMIGRATE_DB",
    default="vgmigrate.db",
    show_default=True,
    type=click.Path(),  # a folder is refused in one line by Inventory
    help="SQLite inventory and journal (env VGMIGRATE_DB).",
)
@click.option("--account", "account_id", envvar="CLOUDFLARE_ACCOUNT_ID", help="Cloudflare account id (env CLOUDFLARE_ACCOUNT_ID).")
@click.option("--token", envvar="CLOUDFLARE_API_TOKEN", help="API token (env CLOUDFLARE_API_TOKEN; prefer the variable).")
@click.option(
    "--base-url",
    envvar="CLOUDFLARE_BASE_URL",
    default=DEFAULT_BASE_URL,
    show_default=True,
    help="API base URL (env CLOUDFLARE_BASE_URL), e.g. a sandbox.",
)
@click.option("--authentik-url", envvar="AUTHENTIK_URL", help="Authentik address, with or without /api/v3 (env AUTHENTIK_URL).")
@click.option("--authentik-token", envvar="AUTHENTIK_TOKEN", help="Authentik API token (env AUTHENTIK_TOKEN; prefer the variable).")
@click.option("--idp", type=click.Choice(IDPS), envvar="VGMIGRATE_IDP",
              help="The IdP of an IdP-managed run, when the variables of more than one are set (env VGMIGRATE_IDP).")
@click.option("--debug", is_flag=True, help="Show tracebacks for expected failures.")
@click.pass_context
def cli(ctx, db_path, account_id, token, base_url, authentik_url, authentik_token, idp, debug):
    """Move a Cloudflare account off SCIM virtual groups onto native User Groups."""
    if debug:
        log_debug()
    ctx.obj = Settings(db_path, account_id, token, base_url.rstrip("/"), debug, authentik_url, authentik_token, idp)
    show_rate_limit_waits()


def show_rate_limit_waits():
    """Say on stderr when and why a command waits for the API rate limit (the `vgmigrate.ratelimit` log)."""
    import logging

    class Stderr(logging.Handler):
        def emit(self, record):  # whatever sys.stderr is at the time of the message
            click.echo(record.getMessage(), err=True)

    waits = logging.getLogger("vgmigrate.ratelimit")
    if not any(type(h).__name__ == "Stderr" for h in waits.handlers):
        waits.addHandler(Stderr())
        waits.setLevel(logging.INFO)
        waits.propagate = False  # said once, also under --debug (whose handler sits on the root logger)


def log_debug():
    import logging

    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")


def global_params():
    """The global options, offered again on each command so they work after its name too
    (`vgmigrate scan --token X`); a value given there wins over one given before it."""

    def override(field):
        def callback(ctx, param, value):
            if value is None or value is False:
                return
            settings = ctx.find_object(Settings)
            setattr(settings, field, value.rstrip("/") if field == "base_url" else value)
            if field == "debug":
                log_debug()

        return callback

    def option(*decls, field, **kwargs):
        return click.Option(decls, expose_value=False, callback=override(field), **kwargs)

    return [
        option("--db", field="db_path", type=click.Path(dir_okay=False), help="SQLite inventory and journal (env VGMIGRATE_DB)."),
        option("--account", field="account_id", help="Cloudflare account id (env CLOUDFLARE_ACCOUNT_ID)."),
        option("--token", field="token", help="API token (env CLOUDFLARE_API_TOKEN; prefer the variable)."),
        option("--base-url", field="base_url", help="API base URL (env CLOUDFLARE_BASE_URL), e.g. a sandbox."),
        option("--authentik-url", field="authentik_url", help="Authentik address (env AUTHENTIK_URL)."),
        option("--authentik-token", field="authentik_token", help="Authentik API token (env AUTHENTIK_TOKEN; prefer the variable)."),
        option("--idp", field="idp", type=click.Choice(IDPS), help="The IdP, when the variables of more than one are set (env VGMIGRATE_IDP)."),
        option("--debug", field="debug", is_flag=True, default=None, help="Show tracebacks for expected failures."),
    ]


def sync_timeout_option(what):
    """`--sync-timeout`: how long a command waits for the IdP's pushes to reach Cloudflare."""
    return click.option("--sync-timeout", type=click.FloatRange(1), default=120, show_default=True,
                        help=f"IdP-managed runs: seconds to wait for {what} to reach Cloudflare from the IdP.")


def yes_option(help="Do not ask for confirmation."):
    return click.option("--yes", is_flag=True, help=help)


def parallel_option(help=None, default=8):
    """`--parallel`: how many independent calls go at once (they share the rate limit)."""
    return click.option("--parallel", type=click.IntRange(1, 32), default=default, show_default=True, help=help)


def run_option(help):
    """`--run`: the run a command works on; the command receives `run_id`."""
    return click.option("--run", "run_id", help=help)


def output_format(*more, help="table for people, json for scripts (stdout holds only the JSON)."):
    """`--format table|...|json` and its short alias `--json`; the command receives `fmt`."""

    def decorate(command):
        @functools.wraps(command)
        def wrapper(*args, as_json=False, fmt="table", **kwargs):
            return command(*args, fmt="json" if as_json else fmt, **kwargs)

        wrapper = click.option("--json", "as_json", is_flag=True, help="Short for --format json.")(wrapper)
        return click.option("--format", "fmt", type=click.Choice(["table", *more, "json"]), default="table",
                            show_default=True, help=help)(wrapper)

    return decorate


def emit_json(data):
    from .reports import to_json

    click.echo(to_json(data))


# Workflow modules are imported inside commands: `--help` and `sandbox serve` stay fast.


def open_inventory(settings):
    """The inventory; notes on `settings` whether this call just created it (an empty file)."""
    import os

    from .inventory import Inventory

    settings.created_db = not os.path.exists(settings.db_path)
    settings.inventory = Inventory(settings.db_path)
    return settings.inventory


def where_inventory(settings):
    """Which inventory a command read, and whether it was just created empty (a user in another folder
    than the inventory): said in messages about finding nothing in it."""
    import os

    path = os.path.abspath(settings.db_path)
    if getattr(settings, "created_db", False):
        return (f"{path}, which did not exist and was just created empty (is your inventory in another folder? "
                "run vgmigrate there, or pass --db / set VGMIGRATE_DB)")
    return path


def need_terminal_or_yes(command):
    """Without a terminal to ask in, a command that changes the account refuses in one line, before
    anything is printed or changed, unless --yes was passed."""
    if not sys.stdin.isatty():
        raise VgmigrateError(f"{command} asks for confirmation and there is no terminal to ask in; pass --yes to {command} without asking")


def check_account(settings):
    """The account id must be 32 hex characters: checked here, before any call is made."""
    if settings.account_id is None:
        return
    account = settings.account_id.strip().lower()
    if not is_hex_id(account):
        shown = settings.account_id if len(settings.account_id) <= 40 else settings.account_id[:40] + "..."
        raise UsageProblem(
            f"account id {shown!r} is not 32 hex characters; copy the Account ID from the dashboard "
            "(Account Home > ... > Copy account ID) into CLOUDFLARE_ACCOUNT_ID or --account"
        )
    settings.account_id = account


def connect(settings, parallel=None):
    """A Cloudflare client for the configured account; missing settings are usage errors (exit 2)."""
    if not settings.token:
        raise UsageProblem("no API token; set CLOUDFLARE_API_TOKEN (or pass --token)")
    if not settings.account_id:
        raise UsageProblem("no account; set CLOUDFLARE_ACCOUNT_ID (or pass --account)")
    check_account(settings)
    from .cloudflare import CloudflareClient

    if parallel:
        client = CloudflareClient.connect(settings.base_url, settings.token, settings.account_id, parallel=parallel)
    else:
        client = CloudflareClient.connect(settings.base_url, settings.token, settings.account_id)
    client.idp = connect_idp(settings, required=False)  # steps that write to the IdP reach it here
    share_rate_limit(settings, client.http.limiter)
    return client


def share_rate_limit(settings, limiter):
    """The calls the last commands on this inventory sent are in the server's rate-limit window
    for a while yet: this command counts them as its own (not as other clients of the token), and
    leaves its own for the next command."""
    inventory, ctx = getattr(settings, "inventory", None), click.get_current_context(silent=True)
    if inventory is None or ctx is None or limiter.limit is None:
        return
    api = f"{settings.base_url} {settings.account_id}"  # the token is never stored, so never part of the key
    limiter.count_earlier(inventory.recent_calls(api))

    def leave():
        import sqlite3

        try:
            inventory.save_recent_calls(api, limiter.sent_recently())
        except sqlite3.Error:  # a hint for the next command, never a reason for this one to fail
            pass

    ctx.call_on_close(leave)


CHECKS = {"authentik": "migrate.idp.check", "okta": "migrate.idp.okta_check", "entra": "migrate.idp.entra_check"}  # `idp check`, per IdP


def configured_idps(settings):
    """The IdPs whose variables are set, in IDPS order."""
    env = os.environ
    found = {"authentik": bool(settings.authentik_url or settings.authentik_token),
             "okta": bool(env.get("OKTA_ORG_URL") or env.get("OKTA_API_TOKEN") or env.get("OKTA_ACCESS_TOKEN")),
             "entra": bool(env.get("ENTRA_TENANT_ID") or env.get("ENTRA_ACCESS_TOKEN"))}
    return [name for name in IDPS if found[name]]


def connect_idp(settings, required=True, source=None):
    """The client of the IdP asked for (`source`, else --idp, else the one whose variables are
    set), or a one-line usage error naming what is missing. Not required and none or several set
    with nothing to choose between them: None."""
    source = source or settings.idp
    if source is None:
        found = configured_idps(settings)
        if len(found) != 1:
            if not required:
                return None
            if found:
                raise UsageProblem(f"the variables of {' and '.join(found)} are all set: pass --idp (or set VGMIGRATE_IDP) to say which IdP")
            raise UsageProblem("no IdP set: set AUTHENTIK_URL and AUTHENTIK_TOKEN, OKTA_ORG_URL and OKTA_API_TOKEN, "
                               "or ENTRA_TENANT_ID, ENTRA_CLIENT_ID and ENTRA_CLIENT_SECRET")
        source = found[0]
    elif not required and source not in configured_idps(settings):
        return None
    if source == "authentik":
        url, token = settings.authentik_url, settings.authentik_token
        if not (url or "").strip():
            raise UsageProblem("no Authentik URL; set AUTHENTIK_URL (or pass --authentik-url), e.g. https://authentik.example.com")
        if not (token or "").strip():
            raise UsageProblem("no Authentik token; set AUTHENTIK_TOKEN (an Authentik API token with intent \"API\")")
        from .idp.authentik import AuthentikClient

        return AuthentikClient.connect(url, token)
    adapter = importlib.import_module(f"migrate.idp.{source}")
    return adapter.connect_from_env(os.environ)


def idp_for(settings, client=None, source=None):
    """The IdP for a command that needs it, its token checked with one cheap call before anything
    is read from Cloudflare: a bad token is one line, nothing read. `source`: the IdP a plan was
    made with."""
    idp = client.idp if client and client.idp and source in (None, client.idp.source) else connect_idp(settings, source=source)
    idp.me()
    return idp


@cli.command()
@click.option("--source", type=click.Choice(["cloudflare", "file", *IDPS]), default="cloudflare", show_default=True,
              help="Where to read virtual groups: Cloudflare's SCIM groups, an IdP export file, or an IdP's CF- groups "
                   "(Authentik: AUTHENTIK_URL, AUTHENTIK_TOKEN; Okta: OKTA_ORG_URL, OKTA_API_TOKEN; Entra ID: the ENTRA_ variables).")
@click.option("--file", "file_path", type=click.Path(dir_okay=False), help="CSV (group,email) or JSON export, with --source file.")
@click.option("--mapping", type=click.Path(dir_okay=False), help="TOML file mapping role names to permission groups.")
@output_format()
@click.pass_obj
def scan(settings, source, file_path, mapping, fmt):
    """Read the account (read-only) and record a new inventory scan."""
    if source == "file" and not file_path:
        raise click.UsageError("--source file needs --file PATH")
    if file_path and source != "file":
        raise click.UsageError("--file goes with --source file")
    from . import reports
    from .progress import ScanProgress
    from .roles import load_mapping
    from .scan import run_scan

    role_mapping = load_mapping(mapping) if mapping else None
    if file_path:
        from .sources import from_file

        from_file(file_path)  # a bad export is refused before any call
    idp = idp_for(settings, source=source) if source in IDPS else None  # a missing setting or bad token: refused before any call
    inventory = open_inventory(settings)
    client = connect(settings)
    progress = ScanProgress(total=lambda: client.list_total, eta=client.http.limiter.seconds_for)
    try:
        scan_id, counts, findings = run_scan(client, inventory, source=source, file=file_path, mapping=role_mapping, progress=progress, idp=idp)
    except KeyboardInterrupt:
        raise Interrupted("interrupted; nothing was recorded (a scan is one transaction; the last scan is intact): "
                          "run `vgmigrate scan` again") from None
    finally:
        progress.finish()
    token_kind = inventory.scan(scan_id)["token_kind"]
    if fmt == "json":
        return emit_json(reports.scan_json(scan_id, settings.account_id, client.http.calls, counts, findings, token_kind))
    click.echo(f"scan {scan_id} of account {settings.account_id} with {reports.token_words(token_kind)}: {client.http.calls} API calls\n")
    click.echo(reports.scan_summary(counts, findings))
    if findings:
        click.echo("\n" + reports.findings_grouped(findings, width=terminal_width()))
    click.echo("\nNext: `vgmigrate inventory --findings CODE` lists every finding of a kind; then `vgmigrate plan --out plan.json`.")


def last_scan(settings, inventory):
    check_account(settings)
    last = inventory.last_scan(settings.account_id)
    if last is None:
        raise VgmigrateError(f"no scan recorded in {where_inventory(settings)}; run `vgmigrate scan` first")
    return last


@cli.command("inventory")
@output_format()
@click.option("--findings", "code", help="List every finding with this code (e.g. role_not_held) instead of the summary.")
@click.option("--severity", type=click.Choice(["critical", "error", "warning", "info"]), help="Only findings of this severity.")
@click.option("--group", "group", help="Only virtual groups whose name or role contains this (any case).")
@click.pass_obj
def inventory_cmd(settings, fmt, code, severity, group):
    """Show the last scan: virtual groups, roles, resolution, members, and findings grouped by kind."""
    from . import reports
    from .findings import shown_scan

    inventory = open_inventory(settings)
    last = last_scan(settings, inventory)
    data = inventory.load_scan(last["id"])
    groups, findings, rows = shown_scan(data, group, severity, code)
    if fmt == "json":  # the scan's rows, with the filters applied to virtual groups and findings
        return emit_json(rows)
    width = terminal_width()
    out = [f"scan {last['id']} of account {last['account_id']} ({last['account_name']}) from {last['source']} at {last['finished_at']}\n"]
    if not code:
        member_counts = Counter(m["virtual_group_id"] for m in data["virtual_group_members"])
        out.append(reports.virtual_groups_table(groups, member_counts))
    if not findings:
        out.append("\nno findings")
    elif code:
        out.append(reports.findings_table(findings, width=width))
    else:
        out.append("\n" + reports.findings_grouped(findings, width=width))
        out.append("\n`vgmigrate inventory --findings CODE` lists every finding of one kind.")
    page("\n".join(out))


def terminal_width():
    import shutil

    return shutil.get_terminal_size((120, 24)).columns


def page(text):
    """Long output goes through a pager when stdout is a terminal; otherwise it is printed."""
    import shutil

    if sys.stdout.isatty() and text.count("\n") > shutil.get_terminal_size((120, 24)).lines:
        click.echo_via_pager(text)
    else:
        click.echo(text)


def render_plan(plan, fmt, inventory=None, plan_path=None):
    """The plan as `fmt`, piece by piece (echo_chunks writes it)."""
    from . import planfile, reports

    if fmt == "json":
        return planfile.pretty_chunks(plan)
    if fmt in ("markdown", "html"):
        from . import approval

        rehearsed = inventory.last_rehearsal(plan["plan_id"]) if inventory else None
        rehearsal = {"passed": bool(rehearsed["passed"]), "calls": rehearsed["apply_calls"], "at": rehearsed["at"]} if rehearsed else None
        return approval.render_chunks(plan, fmt, rehearsal=rehearsal, plan_path=plan_path or "plan.json")
    return [reports.plan_table(plan) + "\n\n" + reports.plan_summary_line(plan)]


def echo_chunks(chunks, size=1 << 20):
    """Write text given in pieces, then a newline, about `size` characters at a time: a report of
    tens of MB is never one string, and JSON's many small pieces are not one write each."""
    batch, length = [], 0
    for chunk in chunks:
        batch.append(chunk)
        length += len(chunk)
        if length >= size:
            click.echo("".join(batch), nl=False)
            batch, length = [], 0
    click.echo("".join(batch))


format_option = output_format("markdown", "html", help="How to render the plan: a terminal table, a report for the approver, or JSON (the plan file itself).")


@cli.command()
@click.option("--out", type=click.Path(dir_okay=False), help="Write the plan file: the artifact an approver signs off and `apply` takes.")
@click.option("--name-template", default="{role}", show_default=True, help="User Group name; fields {role} (permission group), {vg_role}, {account}.")
@click.option("--mapping", type=click.Path(dir_okay=False), help="TOML file mapping role names to permission groups.")
@click.option("--mode", type=click.Choice(["api", "idp"]), default="api", show_default=True,
              help="api: vgmigrate creates groups, policies and members in Cloudflare. idp: it creates the groups in the IdP, "
                   "which pushes them over SCIM, and attaches only the policies in Cloudflare.")
@click.option("--on-existing", type=click.Choice(["fail", "adopt", "suffix"]), default="fail", show_default=True,
              help="When a User Group the tool did not create already has the target name.")
@click.option("--only", multiple=True, help="Plan only this virtual group (name or role); repeatable.")
@click.option("--detailed-exitcode", is_flag=True, help="Exit 3 when the plan has changes, 0 when there is nothing to do.")
@click.option("--allow-no-break-glass", is_flag=True,
              help="Plan even though no accepted Super Administrator holds the role outside SCIM (not recommended).")
@format_option
@click.pass_obj
def plan(settings, out, name_template, mapping, mode, on_existing, only, detailed_exitcode, allow_no_break_glass, fmt):
    """The dry run: what apply would do, as a table, a report, or a plan file."""
    from . import planfile
    from .planner import UNREAD_TABLES, PlanOptions, build_plan, check_break_glass, check_template
    from .roles import load_mapping

    check_template(name_template)
    inventory = open_inventory(settings)
    last = last_scan(settings, inventory)
    # The mapping the scan used, unless --mapping says otherwise: a plan resolves roles as its scan did.
    role_mapping = load_mapping(mapping) if mapping else json.loads(last["mapping"] or "{}")
    options = PlanOptions(name_template, on_existing, tuple(only), mode, role_mapping)
    idp = None
    if mode == "idp":  # what the IdP holds now, read before planning (the planner makes no calls)
        client = connect(settings)
        idp = idp_for(settings, client).plan_facts(client)
    draft = build_plan(inventory.load_scan(last["id"], without=UNREAD_TABLES), options, inventory.own_groups(), idp)
    check_break_glass(draft, allow_no_break_glass)
    sealed = planfile.seal(draft)
    echo_chunks(render_plan(sealed, fmt, inventory, out))
    if sealed["conflicts"]:
        how = " ".join(f"{quoted(f['subject'])}: {f['message']}; {f['action']}." for f in sealed["findings"] if f["code"] == "name_conflict")
        raise VgmigrateError(f"name_conflict: {len(sealed['conflicts'])} target name(s) already taken by User Groups vgmigrate did not create. {how}")
    if out:
        # Only a written plan can be approved and applied, so only a written plan is recorded.
        inventory.save_plan(planfile.inventory_row(sealed))
        planfile.write(sealed, out)
        click.echo(f"\nWrote {out}. After approval: vgmigrate apply {out}", err=True)
    if not sealed["steps"]:
        click.echo("Nothing to do: every planned group is already migrated.", err=True)
    elif detailed_exitcode:
        sys.exit(3)



@cli.command()
@click.argument("plan_file", type=click.Path(dir_okay=False))
@format_option
@click.pass_obj
def show(settings, plan_file, fmt):
    """Render a saved plan file for reviewers (refuses an edited one)."""
    from . import planfile

    sealed = planfile.read(plan_file)
    inventory = open_inventory(settings) if Path(settings.db_path).exists() else None
    echo_chunks(render_plan(sealed, fmt, inventory, plan_file))


@cli.command()
@click.argument("plan_file", type=click.Path(dir_okay=False))
@parallel_option(default=4)
@click.pass_obj
def rehearse(settings, plan_file, parallel):
    """Apply, verify and roll back the plan on an in-process replica of the account.

    The replica is built from the inventory the plan was made from; no request reaches the real
    account and the real journal is untouched. The approval report then says it was rehearsed.
    """
    from . import planfile
    from .executor import check_plan_matches
    from .progress import StepProgress
    from .rehearsal import real_apply_estimate
    from .rehearsal import rehearse as run_rehearsal

    sealed = planfile.read(plan_file)
    if sealed["options"].get("mode") == "idp":
        raise VgmigrateError("rehearse replays api-mode plans on a Cloudflare replica; an idp plan runs through the IdP: "
                             "try it against `vgmigrate sandbox serve` with --authentik, --okta or --entra instead")
    inventory = open_inventory(settings)
    check_plan_matches(sealed, sealed["account"]["id"], inventory.scan(sealed["scan"]["id"]))
    result = run_rehearsal(inventory, sealed, parallel=parallel, bar=StepProgress)
    click.echo(
        f"rehearsal of plan {sealed['plan_id'][:12]}: apply {result['apply']} ({result['apply_calls']} API calls), "
        f"verify {result['differences']} difference(s), rollback {result['rollback']}, "
        f"account {'restored exactly' if result['restored'] else 'NOT restored'}"
    )
    click.echo(real_apply_estimate(result["apply_calls"]))
    if not result["passed"]:
        raise VgmigrateError("the rehearsal failed; do not apply this plan until the cause is understood")
    click.echo("passed: `vgmigrate show " + plan_file + " --format html` now says so.")


@cli.command()
@click.argument("plan_file", type=click.Path(dir_okay=False))
@yes_option()
@parallel_option("Independent steps sent at once (shared rate limit).")
@sync_timeout_option("each synced group")
@output_format()
@click.pass_obj
def apply(settings, plan_file, yes, parallel, sync_timeout, fmt):
    """Carry out exactly this plan; refuses a tampered, stale or foreign plan."""
    from . import planfile, reports
    from .executor import apply_plan, check_plan_matches
    from .progress import StepProgress
    from .runs import LOCK, steps_already_done

    sealed = planfile.read(plan_file)
    inventory = open_inventory(settings)
    client = connect(settings, parallel)
    if sealed["options"].get("mode") == "idp":
        client.idp = idp_for(settings, client, plan_idp_source(sealed))  # a missing setting or bad token: refused before any call
        client.idp.sync_timeout = sync_timeout
    # What can be refused without a call is refused before anything is printed (apply checks again).
    check_plan_matches(sealed, client.account_id, inventory.scan(sealed["scan"]["id"]))
    inventory.check_lock(LOCK)
    if sealed["steps"] and not yes:
        need_terminal_or_yes("apply")
        click.echo(reports.plan_summary_line(sealed), err=True)
        click.confirm(f"Apply plan {sealed['plan_id'][:12]} to account {sealed['account']['id']}?", abort=True, err=True)
    # A resumed apply starts at the steps already done; they are not counted again.
    done = steps_already_done(inventory, sealed)
    try:
        with StepProgress("applying", len(sealed["steps"]), "steps", done=done, eta=client.http.limiter.seconds_for) as bar:
            result = apply_plan(client, inventory, sealed, parallel=parallel,
                                progress=lambda step, outcome: outcome != "already done" and bar.update(1))
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted; the journal is consistent: run `vgmigrate apply {plan_file}` again to finish, or `vgmigrate rollback`") from None
    if fmt == "json":
        emit_json(reports.run_json(result, plan=sealed["plan_id"]))
    elif result.status == NOTHING_TO_DO:
        click.echo(result.message)
    else:
        click.echo(reports.run_summary(result))
    if result.status not in (DONE, NOTHING_TO_DO):
        raise VgmigrateError(result.message)
    if result.status == DONE:
        click.echo(f"\nNext: vgmigrate verify --run {result.run_id}", err=fmt == "json")


@cli.command()
@run_option("The apply run to check (default: the latest).")
@output_format()
@parallel_option("Groups read at once (shared rate limit).")
@click.pass_obj
def verify(settings, run_id, fmt, parallel):
    """Check live state against the applied plan, member by member. Exit 3 on any difference."""
    from . import reports
    from .progress import StepProgress
    from .verify import verify_run

    as_json = fmt == "json"
    inventory = open_inventory(settings)
    client = connect(settings, parallel)
    bars = []

    def progress(done, total):  # the groups' member lists read so far, of how many
        if not bars:
            bars.append(StepProgress("verifying", total, "User Groups", eta=client.http.limiter.seconds_for).__enter__())
        bars[0].update(done)

    try:
        run, diffs, counts = verify_run(client, inventory, run_id, progress=progress)
    finally:
        for bar in bars:
            bar.__exit__(None, None, None)
    inventory.save_verification(run["id"], counts)
    if as_json:
        click.echo(json.dumps({"run": run["id"], "counts": counts, "differences": diffs}, indent=2, sort_keys=True))
    elif diffs:
        click.echo(reports.differences_table(diffs))
    else:
        click.echo(reports.verify_clean(run["id"], counts))
    if diffs:
        if not as_json:
            click.echo(f"\n{len(diffs)} difference(s). Run `vgmigrate apply` again to finish an incomplete run, or investigate.", err=True)
        sys.exit(3)
    if not as_json:
        from .runs import VERIFIED

        click.echo(f"\nNext: {VERIFIED}")


@cli.command()
@run_option("The apply run to undo (default: the latest not yet rolled back).")
@click.option("--dry-run", is_flag=True, help="Only show what would be undone.")
@yes_option()
@click.option("--force", is_flag=True, help="Also undo objects someone else changed since the run.")
@parallel_option("Independent groups undone at once (shared rate limit).")
@sync_timeout_option("the restored memberships and deletes")
@output_format()
@click.pass_obj
def rollback(settings, run_id, dry_run, yes, force, parallel, sync_timeout, fmt):
    """Undo an apply run from its journal, newest step first."""
    from . import reports
    from .progress import StepProgress
    from .rollback import Rollback
    from .runs import LOCK

    if not dry_run and not yes:
        need_terminal_or_yes("rollback")
    inventory = open_inventory(settings)
    if not dry_run:
        inventory.check_lock(LOCK)  # refused before any preview is printed
    client = connect(settings, parallel)  # one client: the preview and the rollback share its rate limiter
    from .runs import rollback_target

    target = rollback_target(inventory, run_id)
    if target.get("plan_id") and inventory.plan_mode(target["plan_id"]) == "idp":  # the IdP the plan was made with
        client.idp = connect_idp(settings, source=plan_idp_source(inventory.plan_body(target["plan_id"])))
    if client.idp is not None:
        client.idp.sync_timeout = sync_timeout

    def with_progress(label, **options):
        job = Rollback(client, inventory, run_id, force=force, **options)
        total = job.live_actions()
        with StepProgress(label, total, "journal actions", eta=client.http.limiter.seconds_for) as bar:
            job.progress = lambda action, outcome: bar.update(1)
            return job, job.run()

    job, preview = with_progress("checking" if dry_run else "checking what to undo", dry_run=True)
    if preview.status == NOTHING_TO_DO:
        if fmt == "json":
            return emit_json(reports.run_json(preview, undoes=job.target["id"], dry_run=dry_run, actions=[], left_alone=[]))
        click.echo(preview.message)
        return
    chosen = job.chosen_text(run_id)
    if dry_run:
        if fmt == "json":
            return emit_json(reports.run_json(preview, undoes=job.target["id"], dry_run=True, actions=job.planned, left_alone=job.left_alone))
        click.echo(f"rollback of run {job.target['id']}{chosen}:")
        for line in job.preview():
            click.echo(f"  {line}")
        return
    if not yes:  # the preview goes with the question; what was done is printed after
        for line in job.preview():
            click.echo(f"  {line}", err=True)
        click.confirm(f"Roll back run {job.target['id']}{chosen}?", abort=True, err=True)
    try:
        job, result = with_progress("rolling back")
    except KeyboardInterrupt:
        raise Interrupted(
            f"interrupted; the journal is consistent: run `vgmigrate rollback{' --run ' + run_id if run_id else ''}` again to finish "
            "undoing the run (`vgmigrate status` shows where it stands)"
        ) from None
    if fmt == "json":
        emit_json(reports.run_json(result, undoes=job.target["id"], dry_run=False, actions=job.done, left_alone=result.left_alone))
    else:
        for line in job.done:
            click.echo(f"  done: {line}")
        for line in result.left_alone:
            click.echo(f"  left alone: {line}")
        click.echo(f"rollback {result.run_id}: {result.status} ({result.calls} API calls), undoing run {job.target['id']}{chosen}")
    if result.left_alone:
        raise VgmigrateError(f"{len(result.left_alone)} object(s) were left alone because someone changed them; re-run with --force to undo them anyway")
    if result.status not in (UNDONE, NOTHING_TO_DO):
        raise VgmigrateError(f"run {job.target['id']} is only partly rolled back: {result.message}; run `vgmigrate rollback` again")


@cli.command()
@output_format()
@click.pass_obj
def history(settings, fmt):
    """Every apply and rollback run, oldest first."""
    from . import reports
    from .runs import step_counts

    inventory = open_inventory(settings)
    runs = inventory.runs()
    if fmt == "json":
        return emit_json({"inventory": inventory.path, "runs": reports.runs_json(runs, step_counts(inventory, runs))})
    click.echo(reports.runs_table(runs, step_counts(inventory, runs)) if runs else "no runs yet")


@cli.command()
@output_format()
@click.pass_obj
def status(settings, fmt):
    """Where the migration stands (scan, plan, rehearsal, runs, verify), and what to do next."""
    import os

    from . import reports
    from .runs import no_inventory, stage, step_counts

    check_account(settings)
    if not os.path.exists(settings.db_path):  # asking where things stand creates nothing
        data = no_inventory(settings.db_path)
        return emit_json(data) if fmt == "json" else click.echo(reports.status_text(data, {}))
    inventory = open_inventory(settings)
    data = stage(inventory, settings.account_id)
    if fmt == "json":
        return emit_json(data)
    click.echo(reports.status_text(data, step_counts(inventory, data["runs"]), where=where_inventory(settings)))


@cli.command()
@click.argument("lock_id")
@yes_option()
@click.pass_obj
def unlock(settings, lock_id, yes):
    """Remove the lock LOCK_ID left by an apply or rollback that is gone.

    LOCK_ID is the run id that `status` and the "locked by" error show. Refused while that process
    still runs on this host; a lock taken on another host cannot be checked from here, so look there
    first.
    """
    from .inventory import holder_alive

    inventory = open_inventory(settings)
    lock = inventory.lock(lock_id)
    if lock is None:
        raise VgmigrateError(f"no lock with id {lock_id!r} in {settings.db_path}; `vgmigrate status` shows the lock, if any")
    if holder_alive(lock) is None:
        click.echo(f"lock {lock_id} was taken by {lock['holder']}, another host: check there that it is not running", err=True)
    if not yes:
        if not sys.stdin.isatty():
            raise VgmigrateError("unlock needs confirmation: run it in a terminal, or pass --yes")
        click.confirm(f"Remove lock {lock_id} held by {lock['holder']} since {lock['acquired_at']}?", abort=True, err=True)
    inventory.break_lock(lock_id)
    click.echo(f"lock {lock_id} removed; `vgmigrate status` says what to run next")


@cli.command()
@click.option("--dir", "workdir", type=click.Path(file_okay=False), help="Where to keep the demo's inventory, plan and reports (default: a new temporary folder).")
@click.option("--mode", type=click.Choice(["api", "idp"]), default="api", show_default=True,
              help="api: vgmigrate writes the User Groups; idp: the IdP (emulated) owns them and vgmigrate attaches the policies.")
@click.option("--idp", "idp_name", type=click.Choice(IDPS), default="authentik", show_default=True, help="With --mode idp: which IdP to emulate.")
def demo(workdir, mode, idp_name):
    """The whole migration against the embedded sandbox: no account or token needed."""
    import tempfile

    from .demo import run_demo

    run_demo(cli, workdir or tempfile.mkdtemp(prefix="vgmigrate-demo-"), mode, idp_name)


@cli.command("export")
@click.option("--format", "fmt", type=click.Choice(["csv", "json", "jsonl", "markdown", "html", "terraform"]), default="csv", show_default=True,
              help="csv/jsonl: one file per table; json: one document; markdown/html: a run summary to read; "
                   "terraform: the run's User Groups as Terraform code with import blocks (reads them from Cloudflare).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Directory to write into (created if missing).")
@run_option("Only this run, with the rollback that undid it or the apply it undid (default: every run; "
            "terraform: the latest apply).")
@click.option("--json", "as_json", is_flag=True, help="Short for --format json (and the summary on stdout is JSON).")
@click.option("--with-audit-log", is_flag=True, help="Also read Cloudflare's account audit log for the runs' time window and link it to the journal.")
@click.pass_obj
def export_cmd(settings, fmt, out_dir, run_id, with_audit_log, as_json):
    """Audit export: inventory, findings, plans, runs and the full journal. Never contains the token.

    --format terraform instead writes the User Groups of an apply run as Terraform code, with an
    import block per object, read from Cloudflare as they are now.
    """
    from .export import export_audit, fetch_audit_entries

    fmt = "json" if as_json else fmt
    inventory = open_inventory(settings)
    if fmt == "terraform":
        from .terraform import export_terraform

        if with_audit_log:
            raise UsageProblem("--with-audit-log goes with the audit formats, not --format terraform; run the two exports separately")
        result = export_terraform(inventory, connect(settings), out_dir, run_id=run_id, secrets=[settings.token])
        return click.echo(result.summary_line(out_dir))
    fetch = None
    if with_audit_log:
        client = connect(settings)
        fetch = lambda since, before: fetch_audit_entries(client, since, before)  # noqa: E731
    result = export_audit(inventory, fmt, out_dir, run_id=run_id, account_id=settings.account_id, fetch_audit_log=fetch,
                          secrets=[settings.token] if settings.token else [])
    if fmt == "json":
        from .reports import export_json

        return emit_json(export_json(result, out_dir))
    click.echo(result.summary_line(out_dir))


@cli.command()
@run_option("The apply run whose groups replace the CF- groups (default: the latest).")
@click.option("--delete-groups", is_flag=True, help="Also delete each CF- group in the IdP that nobody is left in (rollback re-creates it).")
@yes_option()
@sync_timeout_option("the removals")
@output_format()
@click.pass_obj
def cutover(settings, run_id, delete_groups, yes, sync_timeout, fmt):
    """Take the migrated members out of the old CF- groups in the IdP, once verify is clean.

    Cloudflare then drops the legacy roles; the new User Groups keep granting them. With
    --delete-groups, a CF- group left empty is deleted in the IdP too. Refuses if verify finds a
    difference, or if no Super Administrator would be left outside SCIM. Ends once Cloudflare has
    dropped the legacy roles (or names those it still gives). Undo with `vgmigrate rollback`.
    """
    from . import reports
    from .cutover import Cutover, finish_waiting, prepare
    from .progress import StepProgress
    from .runs import LOCK, apply_run

    inventory = open_inventory(settings)
    inventory.check_lock(LOCK)
    run = apply_run(inventory, run_id)
    if inventory.plan_mode(run["plan_id"]) != "idp":
        raise VgmigrateError(
            f"run {run['id']} applied an API-mode plan, and API mode has no cutover: vgmigrate does not write to your IdP. "
            "Once `vgmigrate verify` is clean, remove the migrated members from the CF- groups in your IdP (or stop pushing "
            "those groups to Cloudflare) there; `--mode idp` plans are the ones `cutover` finishes, through the IdP"
        )
    client = connect(settings)
    client.idp = idp_for(settings, client, plan_idp_source(inventory.plan_body(run["plan_id"])))
    work = prepare(client, inventory, run, delete_groups=delete_groups)
    click.echo("verify: " + reports.verify_clean(run["id"], work.verified), err=True)
    steps, stay = work.steps, work.stay
    for name, why in work.kept:
        click.echo(f"{quoted(name)} is not deleted: {why}", err=True)
    if stay:
        click.echo(f"{len(stay)} migrated member(s) stay in their CF- groups: Cloudflare no longer gives them those groups' roles, "
                   f"and putting them back on rollback would grant the roles again (first: {stay[0][1]} in {quoted(stay[0][0])}); "
                   f"remove them in {client.idp.name} by hand once you no longer need the rollback", err=True)
    if not steps:
        waited, left = finish_waiting(client, inventory, work.plan["plan_id"], sync_timeout)
        if left:
            raise VgmigrateError(f"cutover {waited['id']}: " + inventory.run(waited["id"])["message"])
        if waited:
            click.echo(f"cutover {waited['id']}: done; Cloudflare has dropped the legacy roles of the members who left their CF- groups.")
            return
        click.echo(f"Nothing to do: no migrated member is left in a CF- group in {client.idp.name}.")
        return
    if not yes:
        need_terminal_or_yes("cutover")
        from .steps import RemoveIdpMembers, is_kind

        removes = [s for s in steps if is_kind(s, RemoveIdpMembers)]
        for step in steps:
            click.echo(f"  {step['target']}: " + (f"{len(step['request']['remove'])} member(s) leave" if step in removes
                                                  else "deleted once empty"), err=True)
        deletes = f" and delete {len(steps) - len(removes)} emptied group(s)" if len(steps) > len(removes) else ""
        click.confirm(f"Remove these members from {len(removes)} CF- group(s) in {client.idp.name}{deletes}?", abort=True, err=True)
    cut = Cutover(client, inventory, steps, work.checks, work.plan["plan_id"], timeout=sync_timeout)
    try:
        with StepProgress("cutover", len(steps), "CF- groups") as bar:
            cut.progress = lambda step, outcome: bar.update(1)
            result = cut.run()
    except KeyboardInterrupt:
        raise Interrupted("interrupted; the journal is consistent: run `vgmigrate cutover` again to finish, or `vgmigrate rollback`") from None
    if fmt == "json":
        emit_json(reports.run_json(result, plan=work.plan["plan_id"]))
    else:
        click.echo(reports.run_summary(result))
    if result.status != DONE:
        raise VgmigrateError(result.message)


@cli.group("idp")
def idp_group():
    """The IdP side (Authentik, Okta or Entra ID): check and fix what provisions this account."""


@idp_group.command("check")
@click.option("--fix", is_flag=True, help="Create the SCIM provider and/or application if missing, or attach the provider (asks first; journaled; undo with `vgmigrate rollback --run <id>`).")
@yes_option("With --fix: do not ask for confirmation.")
@click.option("--scim-token", envvar="CLOUDFLARE_SCIM_TOKEN", help="Cloudflare's SCIM token, for --fix to create the provider with (env CLOUDFLARE_SCIM_TOKEN; prefer the variable).")
@click.option("--application", help="With --fix: attach the provider to this existing application (slug) instead of cloudflare-dashboard.")
@output_format()
@click.pass_obj
def idp_check(settings, fix, yes, scim_token, application, fmt):
    """Check what provisions this account from the IdP: Authentik's SCIM provider, Okta's app and its
    push mappings, or Entra ID's enterprise application and its provisioning job.

    Every problem is one line with its fix; exit 1 if any needs fixing.
    """
    idp_client = connect_idp(settings)
    idp = importlib.import_module(CHECKS[idp_client.source])
    client = connect(settings)
    client.idp = idp_client
    if fix and not yes:
        need_terminal_or_yes("idp check --fix")
    report = idp.check(client, idp_client)
    if fix:
        steps, _ = idp.plan_fix(report.facts, scim_token=scim_token, application=application)
        if steps:
            click.echo(idp.render(report), err=True)
            click.echo("\n--fix will:", err=True)
            for step in steps:
                click.echo(f"  {step.description}", err=True)
            after = getattr(idp, "AFTER_FIX", "then start a full sync, so the check after it shows the new set-up")
            click.echo(f"  {after}", err=True)
            if not yes:
                click.confirm(f"Make these changes in {idp_client.name}?", abort=True, err=True)
            run_id, done = idp.apply_fix(client, open_inventory(settings), steps, provider_pk=(report.facts.provider or {}).get("pk"))
            for line in done:
                click.echo(f"  done: {line}", err=True)
            click.echo(f"idp fix run {run_id}; undo with: vgmigrate rollback --run {run_id}\n", err=True)
            report = idp.check(client, idp_client)
        elif report.problems:
            click.echo("--fix has nothing to create or attach; the problems below need a person", err=True)
    if fmt == "json":
        emit_json(report.as_json())
    else:
        click.echo(idp.render(report))
    if report.problems:
        raise VgmigrateError(f"{len(report.problems)} problem(s) in the {idp_client.name} setup; each line above says how to fix it")


idp_check.params.extend(global_params())

EXAMPLES = {
    "cutover": ["vgmigrate cutover", "vgmigrate cutover --yes", "vgmigrate cutover --delete-groups"],
    "idp": ["vgmigrate idp check", "CLOUDFLARE_SCIM_TOKEN=... vgmigrate idp check --fix"],
    "scan": ["vgmigrate scan", "vgmigrate scan --source file --file okta-export.csv --mapping roles.toml",
             "vgmigrate scan --source authentik"],
    "inventory": ["vgmigrate inventory --findings role_not_held", "vgmigrate inventory --group dns --severity critical"],
    "plan": ["vgmigrate plan --out plan.json", "vgmigrate plan --on-existing suffix --only DNS --format markdown"],
    "show": ["vgmigrate show plan.json --format html > plan.html"],
    "rehearse": ["vgmigrate rehearse plan.json"],
    "apply": ["vgmigrate apply plan.json", "vgmigrate apply plan.json --yes --parallel 8"],
    "verify": ["vgmigrate verify", "vgmigrate verify --run apply-20251201T101500000Z --json"],
    "rollback": ["vgmigrate rollback --dry-run", "vgmigrate rollback --yes --json"],
    "status": ["vgmigrate status", "vgmigrate status --json"],
    "history": ["vgmigrate history", "vgmigrate history --format json"],
    "unlock": ["vgmigrate unlock apply-20251201T101500000Z"],
    "export": ["vgmigrate export --format html --out audit/", "vgmigrate export --format csv --out audit/ --with-audit-log",
               "vgmigrate export --format terraform --out terraform/"],
    "demo": ["vgmigrate demo --dir demo/"],
}
for _name, _command in cli.commands.items():
    if _name != "demo":
        _command.params.extend(global_params())
    _command.epilog = "\b\nExamples:\n" + "\n".join(f"  {line}" for line in EXAMPLES[_name])
