"""`vgmigrate sandbox ...`: run the Cloudflare emulator standalone (optionally with the authentik one), or dump a seed."""

import gc
import json
import signal
import sys
import threading

import click

from ..errors import VgmigrateError
from .seeds import demo_seed, generate_seed
from .state import SeedError


class _Pair(click.ParamType):
    """`A,B` or `A/B` -> (int, number)."""

    def __init__(self, name, separator, second=int):
        self.name = name
        self.separator = separator
        self.second = second

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        first, sep, rest = str(value).partition(self.separator)
        try:
            pair = (int(first), self.second(rest))
        except ValueError:
            pair = None
        if not sep or pair is None or pair[0] < 1 or pair[1] <= 0:
            self.fail(f"expected {self.name}, e.g. {'2000,50000' if self.separator == ',' else '1200/300'}; got {value!r}", param, ctx)
        return pair


GROUPS_MEMBERS = _Pair("GROUPS,MEMBERS", ",")
RATE = _Pair("REQUESTS/SECONDS", "/", float)
PROBABILITY = click.FloatRange(0.0, 1.0)


@click.group()
def sandbox():
    """The embedded Cloudflare emulator."""


def _load_seed(seed_file, generate, random_seed):
    if seed_file and generate:
        raise click.UsageError("use either --seed or --generate, not both")
    if generate:
        return generate_seed(*generate, random_seed=random_seed)
    if not seed_file:
        return demo_seed()
    try:
        with open(seed_file, encoding="utf-8") as handle:
            return json.load(handle)
    except OSError as err:
        raise VgmigrateError(f"cannot read seed file {seed_file}: {err.strerror}") from None
    except ValueError as err:
        raise VgmigrateError(f"seed file {seed_file} is not valid JSON: {err}") from None


@sandbox.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on (keep it loopback).")
@click.option("--port", type=click.IntRange(0, 65535), default=8787, show_default=True, help="Port; 0 picks a free one.")
@click.option("--seed", "seed_file", type=click.Path(dir_okay=False), help="Seed JSON file (see `sandbox seed`).")
@click.option("--generate", type=GROUPS_MEMBERS, help="Generate a large account instead, e.g. 2000,50000.")
@click.option("--latency-ms", type=click.IntRange(0), default=0, show_default=True, help="How long every answer takes, counted from the request's arrival (the sandbox's own work included).")
@click.option("--rate-limit", type=RATE, default="1200/300", show_default=True, help="Requests per window seconds, per token.")
@click.option("--no-rate-limit", is_flag=True, help="Disable the rate limit.")
@click.option("--fail-5xx", type=PROBABILITY, default=0.0, help="Probability of a 5xx (change not applied).")
@click.option("--lose-responses", type=PROBABILITY, default=0.0, help="Probability the change is applied but the response is lost.")
@click.option("--timeouts", type=PROBABILITY, default=0.0, help="Probability a request hangs, then the connection drops.")
@click.option("--timeout-seconds", type=click.FloatRange(0, min_open=True), default=30.0, show_default=True, help="How long a timeout fault hangs.")
@click.option("--random-seed", type=int, default=0, show_default=True, help="Seed for faults, generated data and new ids.")
@click.option("--token", "fixed_token", help="Use this token instead of a random one (never a real Cloudflare token).")
@click.option("--token-kind", type=click.Choice(["account", "user"]), default="account", show_default=True)
@click.option("--verbose", is_flag=True, help="Log each request to stderr.")
@click.option("--authentik", "with_authentik", is_flag=True, help="Also serve an authentik emulator seeded from this account, pushing SCIM into it.")
@click.option("--authentik-version", default="2026.5.6", show_default=True, help="authentik version to emulate (shapes and features).")
@click.option("--authentik-port", type=click.IntRange(0, 65535), default=9000, show_default=True, help="authentik emulator port; 0 picks a free one.")
@click.option("--authentik-scope", type=click.Choice(["listed", "all"]), default="listed", show_default=True,
              help="Provider group_filters: the seeded CF- groups, or empty (every group).")
@click.option("--authentik-detached", is_flag=True, help="The SCIM provider is not attached to an application (it syncs nothing).")
@click.option("--entra", "with_entra", is_flag=True, help="Also serve an Entra ID (Graph) emulator seeded from this account, provisioning SCIM into it.")
@click.option("--entra-port", type=click.IntRange(0, 65535), default=9100, show_default=True, help="Entra emulator port; 0 picks a free one.")
@click.option("--entra-cycle-seconds", type=click.FloatRange(0.1), default=5.0, show_default=True,
              help="How often the provisioning job runs a cycle (Entra: every 40 minutes).")
@click.option("--okta", "with_okta", is_flag=True, help="Also serve an Okta emulator seeded from this account, pushing SCIM into it.")
@click.option("--okta-port", type=click.IntRange(0, 65535), default=9200, show_default=True, help="Okta emulator port; 0 picks a free one.")
def serve(host, port, seed_file, generate, latency_ms, rate_limit, no_rate_limit, fail_5xx, lose_responses, timeouts,
          timeout_seconds, random_seed, fixed_token, token_kind, verbose, with_authentik, authentik_version, authentik_port,
          authentik_scope, authentik_detached, with_entra, entra_port, entra_cycle_seconds, with_okta, okta_port):
    """Serve the emulator until Ctrl-C and print the variables that point vgmigrate at it."""
    from .server import Sandbox  # when serving: `vgmigrate --help` stays fast (start-up time)

    seed = _load_seed(seed_file, generate, random_seed)
    try:
        sb = Sandbox(
            seed=seed, token=fixed_token, token_kind=token_kind, rate_limit=None if no_rate_limit else rate_limit,
            latency_ms=latency_ms, fail_5xx=fail_5xx, lose_responses=lose_responses, timeouts=timeouts,
            random_seed=random_seed, timeout_seconds=timeout_seconds, host=host, port=port, verbose=verbose,
        )
    except SeedError as err:
        raise VgmigrateError(f"malformed seed{f' file {seed_file}' if seed_file else ''}: {err}") from None
    # The seeded account lives as long as the server: kept out of the cycle collector's sight, its
    # objects are not walked by every full collection, which held up every answer in flight (0.4 s
    # at once with 100,000 members), latency a real server does not add.
    gc.freeze()
    # Ctrl-C and SIGTERM only set a flag, installed before anything is printed, so a signal that
    # arrives at any moment ends in a clean stop rather than a traceback or click's "Aborted!".
    ak = entra = okta = None
    stopped = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stopped.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            sb.start()
        except OSError as err:
            raise VgmigrateError(f"cannot listen on {host}:{port}: {err.strerror or err}") from None
        if with_authentik:
            from .authentik import AuthentikSandbox

            try:
                ak = AuthentikSandbox(cloudflare=sb, version=authentik_version, scope=authentik_scope, attached=not authentik_detached,
                                      host=host, port=authentik_port, latency_ms=latency_ms, random_seed=random_seed, verbose=verbose)
            except ValueError as err:
                raise VgmigrateError(f"--authentik-version: {err}") from None
            try:
                ak.start()
            except OSError as err:
                raise VgmigrateError(f"cannot listen on {host}:{authentik_port}: {err.strerror or err}") from None
        if with_entra:
            entra = _start_entra(sb, host, entra_port, entra_cycle_seconds, latency_ms, random_seed, verbose)
        if with_okta:
            okta = _serve_okta(sb, host, okta_port, latency_ms, random_seed, verbose)
        click.echo(f"Cloudflare sandbox listening on {sb.base_url}")
        click.echo(f"  account: {sb.account_id} ({sb.state.account['name']})")
        click.echo(f"  token:   {sb.token} ({token_kind}-owned, sandbox only)")
        click.echo("Point vgmigrate (or the cloudflare SDK) at it with:")
        click.echo(f"  export CLOUDFLARE_BASE_URL={sb.base_url} CLOUDFLARE_ACCOUNT_ID={sb.account_id} CLOUDFLARE_API_TOKEN={sb.token}")
        if ak is not None:
            click.echo(f"authentik sandbox ({authentik_version}) listening on {ak.base_url}")
            click.echo(f"  SCIM provider {ak.provider_id} pushes into the Cloudflare sandbox (scope: {authentik_scope}"
                       f"{', not attached' if authentik_detached else ''})")
            click.echo(f"  export AUTHENTIK_URL={ak.base_url} AUTHENTIK_TOKEN={ak.token}")
        if entra is not None:
            click.echo(f"Entra ID sandbox listening on {entra.graph_url} (sign-in at {entra.login_url})")
            click.echo(f"  enterprise application {entra.service_principal_id} provisions the Cloudflare sandbox "
                       f"(a cycle every {entra_cycle_seconds:g} s)")
            click.echo("  export " + " ".join(f"{k}={v}" for k, v in entra.environment().items()))
        if okta is not None:
            click.echo(f"Okta sandbox listening on {okta.base_url}")
            click.echo(f"  app {okta.app_id} ('Cloudflare Dashboard') provisions the Cloudflare sandbox and pushes its groups")
            click.echo(f"  export OKTA_ORG_URL={okta.base_url} OKTA_API_TOKEN={okta.token}")
        click.echo("Press Ctrl-C to stop.")
        sys.stdout.flush()
        while not stopped.wait(0.5):
            pass
    finally:
        if entra is not None:
            entra.stop()
        if okta is not None:
            okta.stop()
        if ak is not None:
            ak.stop()
        sb.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    click.echo("Sandbox stopped.", err=True)


def _start_entra(sb, host, port, cycle_seconds, latency_ms, random_seed, verbose):
    from .entra import EntraSandbox

    entra = EntraSandbox(cloudflare=sb, host=host, port=port, cycle_seconds=cycle_seconds, latency_ms=latency_ms,
                         random_seed=random_seed, verbose=verbose)
    try:
        return entra.start()
    except OSError as err:
        raise VgmigrateError(f"cannot listen on {host}:{port}: {err.strerror or err}") from None


def _serve_okta(sb, host, port, latency_ms, random_seed, verbose):
    from .okta import OktaSandbox

    okta = OktaSandbox(cloudflare=sb, host=host, port=port, latency_ms=latency_ms, random_seed=random_seed, verbose=verbose)
    try:
        return okta.start()
    except OSError as err:
        raise VgmigrateError(f"cannot listen on {host}:{port}: {err.strerror or err}") from None


@sandbox.command("seed")
@click.option("--generate", type=GROUPS_MEMBERS, help="A generated account, e.g. 2000,50000 (default: the demo account).")
@click.option("--random-seed", type=int, default=0, show_default=True, help="Seed for --generate.")
def dump_seed(generate, random_seed):
    """Print a seed as JSON (edit it and pass it to `serve --seed`)."""
    if generate:
        click.echo(json.dumps(generate_seed(*generate, random_seed=random_seed), separators=(",", ":")))
    else:
        click.echo(json.dumps(demo_seed(), indent=2, ensure_ascii=False))
