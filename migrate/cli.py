"""Command-line wiring only: options, prompts, output and exit codes. The work happens elsewhere."""

import sys
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


from .sandbox.cli import sandbox  # noqa: E402

cli.add_command(sandbox)
