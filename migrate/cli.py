"""Command-line wiring only: options, prompts, output and exit codes. The work happens elsewhere."""

import json
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

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
            if ctx.obj and ctx.obj.debug:
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
    if debug:
        import logging

        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
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
    """Scan progress on stderr: a bar per list, redrawn in place on a terminal; on anything else
    one line per phase, so logs stay readable."""

    def __init__(self, total=lambda: None):
        self.total = total  # how many items the list being read said it has, if it said
        self.tty = sys.stderr.isatty()
        self.phase, self.count, self.phase_total = None, 0, None

    def __call__(self, phase, n=1):
        if phase != self.phase:
            self.finish()
            self.phase, self.count = phase, 0
            if not self.tty:
                click.echo(f"reading {phase}...", err=True)
        self.count += n
        self.phase_total = self.total()  # read now: the page this item came from has just arrived
        if self.tty and (self.count % 100 == 1 or n > 1):
            click.echo("\r" + self.line(), err=True, nl=False)

    def line(self):
        total = self.phase_total
        if not total or total < self.count:
            return f"reading {self.phase}: {self.count:,}"
        done = int(30 * self.count / total)
        return f"reading {self.phase} [{'#' * done}{'.' * (30 - done)}] {self.count:,}/{total:,}"

    def finish(self):
        if self.tty and self.phase:
            click.echo("\r" + self.line(), err=True)
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
    progress = Progress(total=lambda: client.list_total)
    scan_id, counts, findings = run_scan(client, inventory, source=source, file=file_path, mapping=role_mapping, progress=progress)
    progress.finish()
    click.echo(f"scan {scan_id} of account {settings.account_id}: {client.http.calls} API calls\n")
    click.echo(reports.scan_summary(counts, findings))
    urgent = [f for f in findings if f.severity in ("critical", "error")]
    if urgent:
        click.echo("\n" + reports.findings_table(urgent))
    click.echo("\nNext: `vgmigrate inventory` for every finding, then `vgmigrate plan --out plan.json`.")


def last_scan(settings, inventory):
    last = inventory.last_scan(settings.account_id)
    if last is None:
        raise VgmigrateError("no scan recorded in this inventory yet; run `vgmigrate scan` first")
    return last


@cli.command("inventory")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def inventory_cmd(settings, as_json):
    """Show the last scan in full: groups, roles, resolution, members, findings."""
    from . import reports
    from .findings import Finding

    inventory = open_inventory(settings)
    last = last_scan(settings, inventory)
    data = inventory.load_scan(last["id"])
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))
        return
    click.echo(f"scan {last['id']} of account {last['account_id']} ({last['account_name']}) from {last['source']} at {last['finished_at']}\n")
    member_counts = Counter(m["virtual_group_id"] for m in data["virtual_group_members"])
    click.echo(reports.virtual_groups_table(data["virtual_groups"], member_counts))
    findings = [Finding.from_row(f) for f in data["findings"]]
    click.echo("\n" + (reports.findings_table(findings) if findings else "no findings"))


def render_plan(plan, fmt, inventory=None, plan_path=None):
    from . import reports

    if fmt == "json":
        return json.dumps(plan, indent=2, sort_keys=True, ensure_ascii=False)
    if fmt in ("markdown", "html"):
        from . import approval

        rehearsed = inventory.last_rehearsal(plan["plan_id"]) if inventory else None
        rehearsal = {"passed": bool(rehearsed["passed"]), "calls": rehearsed["apply_calls"], "at": rehearsed["at"]} if rehearsed else None
        return approval.render(plan, fmt, rehearsal=rehearsal, plan_path=plan_path or "plan.json")
    return reports.plan_table(plan) + "\n\n" + reports.plan_summary_line(plan)


format_option = click.option(
    "--format", "fmt", type=click.Choice(["table", "markdown", "html", "json"]), default="table", show_default=True,
    help="How to render the plan: a terminal table, a report for the approver, or JSON.",
)


@cli.command()
@click.option("--out", type=click.Path(dir_okay=False), help="Write the plan file: the artifact an approver signs off and `apply` takes.")
@click.option("--name-template", default="{role}", show_default=True, help="User Group name; fields {role} (permission group), {vg_role}, {account}.")
@click.option("--mapping", type=click.Path(dir_okay=False), help="TOML file mapping role names to permission groups.")
@click.option("--mode", type=click.Choice(["api"]), default="api", show_default=True, help="api: vgmigrate creates groups, policies and members.")
@click.option("--on-existing", type=click.Choice(["fail", "adopt", "suffix"]), default="fail", show_default=True,
              help="When a User Group the tool did not create already has the target name.")
@click.option("--only", multiple=True, help="Plan only this virtual group (name or role); repeatable.")
@click.option("--detailed-exitcode", is_flag=True, help="Exit 3 when the plan has changes, 0 when there is nothing to do.")
@format_option
@click.pass_obj
def plan(settings, out, name_template, mapping, mode, on_existing, only, detailed_exitcode, fmt):
    """The dry run: what apply would do, as a table, a report, or a plan file."""
    from . import planfile
    from .planner import PlanOptions, build_plan, check_template
    from .roles import load_mapping

    check_template(name_template)
    options = PlanOptions(name_template, on_existing, tuple(only), mode, load_mapping(mapping) if mapping else {})
    inventory = open_inventory(settings)
    last = last_scan(settings, inventory)
    sealed = planfile.seal(build_plan(inventory.load_scan(last["id"]), options, inventory.own_groups()))
    inventory.save_plan({"id": sealed["plan_id"], "created_at": sealed["created_at"], "account_id": sealed["account"]["id"],
                         "scan_id": last["id"], "mode": mode, "steps": len(sealed["steps"]), "body": planfile.canonical(sealed)})
    click.echo(render_plan(sealed, fmt, inventory, out))
    if sealed["conflicts"]:
        how = " ".join(f"{f['subject']!r}: {f['message']}; {f['action']}." for f in sealed["findings"] if f["code"] == "name_conflict")
        raise VgmigrateError(f"name_conflict: {len(sealed['conflicts'])} target name(s) already taken by User Groups vgmigrate did not create. {how}")
    if out:
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
    click.echo(render_plan(sealed, fmt, inventory, plan_file))


@cli.command()
@click.argument("plan_file", type=click.Path(dir_okay=False))
@click.option("--parallel", type=click.IntRange(1, 32), default=4, show_default=True)
@click.pass_obj
def rehearse(settings, plan_file, parallel):
    """Apply, verify and roll back the plan on an in-process replica of the account.

    The replica is built from the inventory the plan was made from; no request reaches the real
    account and the real journal is untouched. The approval report then says it was rehearsed.
    """
    from . import planfile
    from .executor import check_plan_matches
    from .rehearsal import rehearse as run_rehearsal

    sealed = planfile.read(plan_file)
    inventory = open_inventory(settings)
    check_plan_matches(sealed, sealed["account"]["id"], inventory.scan(sealed["scan"]["id"]))
    result = run_rehearsal(inventory, sealed, parallel=parallel)
    click.echo(
        f"rehearsal of plan {sealed['plan_id'][:12]}: apply {result['apply']} ({result['apply_calls']} API calls), "
        f"verify {result['differences']} difference(s), rollback {result['rollback']}, "
        f"account {'restored exactly' if result['restored'] else 'NOT restored'}"
    )
    if not result["passed"]:
        raise VgmigrateError("the rehearsal failed; do not apply this plan until the cause is understood")
    click.echo("passed: `vgmigrate show " + plan_file + " --format html` now says so.")


def step_progress(length, label):
    """A progress bar on stderr (stdout stays clean), drawn only on a terminal."""
    return click.progressbar(length=length, label=label, file=sys.stderr, show_pos=True)


@cli.command()
@click.argument("plan_file", type=click.Path(dir_okay=False))
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--parallel", type=click.IntRange(1, 32), default=4, show_default=True, help="Independent steps sent at once (shared rate limit).")
@click.pass_obj
def apply(settings, plan_file, yes, parallel):
    """Carry out exactly this plan; refuses a tampered, stale or foreign plan."""
    from . import planfile, reports
    from .executor import apply_plan

    sealed = planfile.read(plan_file)
    inventory = open_inventory(settings)
    client = connect(settings)
    click.echo(reports.plan_summary_line(sealed), err=True)
    if sealed["steps"] and not yes:
        click.confirm(f"Apply plan {sealed['plan_id'][:12]} to account {sealed['account']['id']}?", abort=True, err=True)
    try:
        with step_progress(len(sealed["steps"]), "applying") as bar:
            result = apply_plan(client, inventory, sealed, parallel=parallel, progress=lambda step, outcome: bar.update(1))
    except KeyboardInterrupt:
        raise VgmigrateError(f"interrupted; the journal is consistent: run `vgmigrate apply {plan_file}` again to finish, or `vgmigrate rollback`") from None
    if result.status == "nothing_to_do":
        click.echo(result.message)
        return
    click.echo(reports.run_summary(result))
    if result.status != "done":
        raise VgmigrateError(result.message)
    click.echo(f"\nNext: vgmigrate verify --run {result.run_id}")


@cli.command()
@click.option("--run", "run_id", help="The apply run to check (default: the latest).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def verify(settings, run_id, as_json):
    """Check live state against the applied plan, member by member. Exit 3 on any difference."""
    from . import reports
    from .verify import verify_run

    run, diffs, counts = verify_run(connect(settings), open_inventory(settings), run_id)
    if as_json:
        click.echo(json.dumps({"run": run["id"], "counts": counts, "differences": diffs}, indent=2, sort_keys=True))
    elif diffs:
        click.echo(reports.differences_table(diffs))
    else:
        click.echo(f"run {run['id']}: {counts['groups']} User Groups and {counts['member_roles']} member roles match; no differences.")
    if diffs:
        if not as_json:
            click.echo(f"\n{len(diffs)} difference(s). Run `vgmigrate apply` again to finish an incomplete run, or investigate.", err=True)
        sys.exit(3)


@cli.command()
@click.option("--run", "run_id", help="The apply run to undo (default: the latest not yet rolled back).")
@click.option("--dry-run", is_flag=True, help="Only show what would be undone.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--force", is_flag=True, help="Also undo objects someone else changed since the run.")
@click.pass_obj
def rollback(settings, run_id, dry_run, yes, force):
    """Undo an apply run from its journal, newest step first."""
    from .rollback import Rollback

    inventory = open_inventory(settings)
    job = Rollback(connect(settings), inventory, run_id, force=force, dry_run=True)
    preview = job.run()
    if preview.status == "nothing_to_do":
        click.echo(preview.message)
        return
    for line in job.planned:
        click.echo(f"  would {line}")
    for line in job.left_alone:
        click.echo(f"  would leave: {line}")
    if dry_run:
        return
    if not yes:
        click.confirm(f"Roll back run {job.target['id']}?", abort=True, err=True)
    result = Rollback(connect(settings), inventory, run_id, force=force).run()
    click.echo(f"rollback {result.run_id}: {result.status} ({result.calls} API calls)")
    if result.left_alone:
        raise VgmigrateError(f"{len(result.left_alone)} object(s) were left alone because someone changed them; re-run with --force to undo them anyway")


@cli.command()
@click.pass_obj
def history(settings):
    """Every apply and rollback run, oldest first."""
    from . import reports
    from .runs import step_counts

    inventory = open_inventory(settings)
    runs = inventory.runs()
    click.echo(reports.runs_table(runs, step_counts(inventory, runs)) if runs else "no runs yet")


@cli.command()
@click.pass_obj
def status(settings):
    """Where the migration stands, and what to do next."""
    from . import reports
    from .runs import next_step, step_counts, where_it_stands

    inventory = open_inventory(settings)
    last = inventory.last_scan(settings.account_id)
    if last is None:
        click.echo("No scan yet. Next: vgmigrate scan")
        return
    click.echo(f"last scan: {last['id']} of account {last['account_id']} at {last['finished_at']}")
    for lock in inventory.locks():
        click.echo(f"locked by {lock['holder']} since {lock['acquired_at']} (lock id {lock['run_id']})")
    runs = inventory.runs()
    if not runs:
        click.echo("No runs yet. Next: vgmigrate plan --out plan.json, then vgmigrate apply plan.json")
        return
    current = where_it_stands(runs)
    shown = [r for r in runs if r["id"] in (current["id"], runs[-1]["id"])]
    click.echo(reports.runs_table(shown, step_counts(inventory, shown)))
    click.echo("\nNext: " + next_step(current))


@cli.command()
@click.argument("lock_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
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
def demo(workdir):
    """The whole migration against the embedded sandbox: no account or token needed."""
    import tempfile

    from .demo import run_demo

    run_demo(cli, workdir or tempfile.mkdtemp(prefix="vgmigrate-demo-"))


@cli.command("export")
@click.option("--format", "fmt", type=click.Choice(["csv", "json", "jsonl", "markdown", "html"]), default="csv", show_default=True,
              help="csv/jsonl: one file per table; json: one document; markdown/html: a run summary to read.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Directory to write into (created if missing).")
@click.option("--run", "run_id", help="Only this run, with the rollback that undid it or the apply it undid (default: every run).")
@click.option("--with-audit-log", is_flag=True, help="Also read Cloudflare's account audit log for the runs' time window and link it to the journal.")
@click.pass_obj
def export_cmd(settings, fmt, out_dir, run_id, with_audit_log):
    """Audit export: inventory, findings, plans, runs and the full journal. Never contains the token."""
    from .export import export_audit, fetch_audit_entries

    inventory = open_inventory(settings)
    fetch = None
    if with_audit_log:
        client = connect(settings)
        fetch = lambda since, before: fetch_audit_entries(client, since, before)  # noqa: E731
    result = export_audit(inventory, fmt, out_dir, run_id=run_id, account_id=settings.account_id, fetch_audit_log=fetch,
                          secrets=[settings.token] if settings.token else [])
    click.echo(result.summary_line(out_dir))


from .sandbox.cli import sandbox  # noqa: E402

cli.add_command(sandbox)
