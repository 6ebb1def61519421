"""Command-line wiring only: options, prompts, output and exit codes. The work happens elsewhere."""

import json
import sys
from collections import Counter
from dataclasses import dataclass

import click

from . import __version__
from .errors import VgmigrateError

DEFAULT_BASE_URL = "https://api.cloudflare.com/client/v4"


@dataclass
class Settings:
    db_path: str
    account_id: str | None
    token: str | None
    base_url: str
    debug: bool


class VgmigrateGroup(click.Group):
    """Turns expected failures into one line on stderr and a non-zero exit; --debug shows the traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except VgmigrateError as err:
            if "--debug" in sys.argv or (ctx.obj and getattr(ctx.obj, "debug", False)):
                raise
            click.echo(f"Error: {err}", err=True)
            ctx.exit(err.exit_code)


@click.group(cls=VgmigrateGroup)
@click.version_option(__version__, prog_name="vgmigrate")
@click.option(
    "--db",
    "db_path",
    envvar="VGMIGRATE_DB",
    default="vgmigrate.db",
    show_default=True,
    type=click.Path(dir_okay=False),
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
@click.option("--debug", is_flag=True, help="Show tracebacks for expected failures.")
@click.pass_context
def cli(ctx, db_path, account_id, token, base_url, debug):
    """Move a Cloudflare account off SCIM virtual groups onto native User Groups."""
    ctx.obj = Settings(db_path, account_id, token, base_url.rstrip("/"), debug)


# Workflow modules are imported inside commands: `--help` and `sandbox serve` stay fast.


def open_inventory(settings):
    from .inventory import Inventory

    return Inventory(settings.db_path)


def connect(settings):
    """A Cloudflare client for the configured account; missing settings are usage errors."""
    if not settings.token:
        raise click.UsageError("no API token: set CLOUDFLARE_API_TOKEN (or pass --token)")
    if not settings.account_id:
        raise click.UsageError("no account: set CLOUDFLARE_ACCOUNT_ID (or pass --account)")
    from .cloudflare import CloudflareClient

    return CloudflareClient.connect(settings.base_url, settings.token, settings.account_id)


class Progress:
    """Scan progress on stderr: one line rewritten in place on a terminal, one line per phase otherwise."""

    def __init__(self):
        self.tty = sys.stderr.isatty()
        self.phase, self.count = None, 0

    def __call__(self, phase, n=1):
        if phase != self.phase:
            self.finish()
            self.phase, self.count = phase, 0
            if not self.tty:
                click.echo(f"reading {phase}...", err=True)
        self.count += n
        if self.tty and (self.count % 50 == 1 or n > 1):
            click.echo(f"\rreading {phase}: {self.count:,}", err=True, nl=False)

    def finish(self):
        if self.tty and self.phase:
            click.echo(f"\rreading {self.phase}: {self.count:,}", err=True)
        self.phase = None


@cli.command()
@click.option("--source", type=click.Choice(["cloudflare", "file"]), default="cloudflare", show_default=True,
              help="Where to read virtual groups: Cloudflare's SCIM groups, or an IdP export file.")
@click.option("--file", "file_path", type=click.Path(dir_okay=False), help="CSV (group,email) or JSON export, with --source file.")
@click.option("--mapping", type=click.Path(dir_okay=False), help="TOML file mapping role names to permission groups.")
@click.pass_obj
def scan(settings, source, file_path, mapping):
    """Read the account (read-only) and record a new inventory scan."""
    if source == "file" and not file_path:
        raise click.UsageError("--source file needs --file PATH")
    if file_path and source != "file":
        raise click.UsageError("--file goes with --source file")
    from . import reports
    from .roles import load_mapping
    from .scan import run_scan

    role_mapping = load_mapping(mapping) if mapping else None
    inventory = open_inventory(settings)
    client = connect(settings)
    progress = Progress()
    scan_id, counts, findings = run_scan(client, inventory, source=source, file=file_path, mapping=role_mapping, progress=progress)
    progress.finish()
    click.echo(f"scan {scan_id} of account {settings.account_id}: {client.http.calls} API calls\n")
    click.echo(reports.scan_summary(counts, findings))
    urgent = [f for f in findings if f.severity in ("critical", "error")]
    if urgent:
        click.echo("\n" + reports.findings_table(urgent))
    click.echo("\nNext: `vgmigrate inventory` for every finding, then `vgmigrate plan --out plan.json`.")


@cli.command("inventory")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def inventory_cmd(settings, as_json):
    """Show the last scan in full: groups, roles, resolution, members, findings."""
    from . import reports
    from .findings import Finding

    inventory = open_inventory(settings)
    last = inventory.last_scan(settings.account_id)
    if last is None:
        raise VgmigrateError("no scan recorded in this inventory yet; run `vgmigrate scan` first")
    data = inventory.load_scan(last["id"])
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))
        return
    click.echo(f"scan {last['id']} of account {last['account_id']} ({last['account_name']}) from {last['source']} at {last['finished_at']}\n")
    member_counts = Counter(m["virtual_group_id"] for m in data["virtual_group_members"])
    click.echo(reports.virtual_groups_table(data["virtual_groups"], member_counts))
    findings = [Finding(**{k: f[k] for k in ("severity", "code", "subject", "message", "action")}) for f in data["findings"]]
    click.echo("\n" + (reports.findings_table(findings) if findings else "no findings"))


from .sandbox.cli import sandbox  # noqa: E402

cli.add_command(sandbox)
