"""`vgmigrate idp check [--fix]`: is Authentik set up to provision this Cloudflare account?

Cloudflare's "Provision with Authentik" guide, steps 1-2 and "Verify the integration", as checks:
a SCIM provider whose URL is this account's SCIM endpoint, attached to an application, whose token
Cloudflare accepts, which groups it syncs, its last sync status and errors, and what the Authentik
version changes. `gather` reads (the only I/O), `assess` turns the facts into findings (pure), and
`fix` creates or attaches what is missing, journaled as a run of kind `idp_fix` that
`vgmigrate rollback --run <id>` undoes.

Versions the checks were written for: 2024.2 to 2026.8 (the reference notes' version table).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

from ..errors import AuthentikError, CloudflareError, TokenError, UsageProblem
from ..findings import Finding, sort_findings
from ..http import HttpClient, NetworkError, RateLimiter, same_url
from ..names import looks_like_virtual_group
from ..steps import AttachBackchannelProvider, CreateApplication, CreateScimProvider, LinkCfGroup
from . import checking
from .checking import FixStep, host_of
from ..waiting import wait_until
from .authentik import DEFAULT_GROUP_MAPPING, NEWEST_KNOWN, behaviours, log_lines, version_at_least, version_tuple

APP_SLUG = "cloudflare-dashboard"
APP_NAME = "Cloudflare dashboard"
PROVIDER_NAME = "Cloudflare SCIM"
DEFAULT_USER_MAPPING = "goauthentik.io/providers/scim/user"
MAX_ERROR_LINES = 10


# --- facts (read by `gather`) ----------------------------------------------------------------


@dataclass
class Facts:
    account_id: str
    expected_url: str  # this account's SCIM endpoint
    version: str | None = None  # None: the token may not read it
    providers: list = field(default_factory=list)  # every SCIM provider: {pk, name, url}
    matches: list = field(default_factory=list)  # providers whose URL is expected_url (full dicts, token dropped)
    provider: dict | None = None  # the one checked
    application: dict | None = None  # {slug, name, as: backchannel|provider} it is attached to
    applications: list = field(default_factory=list)  # {slug, name, backchannel_providers, provider}
    token_check: str = "not_checked"  # accepted | rejected | unreachable | unexpected | write_only | not_returned | not_token_auth
    token_detail: str = ""
    cf_groups: list = field(default_factory=list)  # Authentik's CF- groups: {pk, name}
    scope: list | None = None  # group_filters as {pk, name}; None: this version has no group_filters
    sync_status: dict | None = None
    error_lines: list = field(default_factory=list)  # from the newest tasks with problems
    custom_group_mappings: list = field(default_factory=list)  # names
    default_mappings: dict = field(default_factory=dict)  # {"user": pk, "group": pk} for a new provider
    unlinked: list = field(default_factory=list)  # names of CF- groups with no link to Cloudflare through the provider
    cloudflare_ids: dict = field(default_factory=dict)  # CF- group name -> Cloudflare SCIM group id (read when links are missing)
    cleanup_victims: list | None = None  # names of linked groups a provider save would delete (2026.2.2+); None: no cleanup

    def as_json(self):
        return asdict(self)


def _public(provider):
    """A provider without its token: what may be printed, journaled or kept."""
    return {k: v for k, v in (provider or {}).items() if k != "token"}


def check_scim_token(url, token, **http_kwargs):
    """Does the SCIM endpoint at `url` accept `token`? ("accepted" | "rejected" | "unreachable" |
    "unexpected", detail). One `GET /ServiceProviderConfig`, the call Authentik makes first; the
    token is never part of the detail."""
    http_kwargs.setdefault("timeout", 10.0)
    http_kwargs.setdefault("max_retries", 1)
    http_kwargs.setdefault("limiter", RateLimiter(limit=None, sleep=http_kwargs.get("sleep", time.sleep)))
    try:
        with HttpClient(url, token, base_url_variable="the SCIM provider's URL", **http_kwargs) as http:
            response = http.request("GET", "/ServiceProviderConfig")
    except TokenError:
        return "rejected", "the provider's token is not a usable header value (spaces or control characters)"
    except NetworkError as err:
        return "unreachable", str(err)
    except CloudflareError as err:  # kept answering 429/5xx
        return "unreachable", f"HTTP {err.status}"
    if 200 <= response.status_code < 300:
        return "accepted", f"HTTP {response.status_code}"
    if response.status_code in (401, 403):
        return "rejected", f"HTTP {response.status_code}"
    return "unexpected", f"HTTP {response.status_code}"


def gather(cf_client, ak, *, check_token=True, token_http_kwargs=None):
    """Read everything `assess` needs. Raises AuthentikError (one line) when the token is refused."""
    ak.me()  # a wrong or expired token fails here, with the fix, before anything else
    facts = Facts(cf_client.account_id, cf_client.scim_url(), version=ak.version())
    providers = ak.scim_providers()
    facts.providers = [{"pk": p.get("pk"), "name": p.get("name"), "url": p.get("url")} for p in providers]
    matches = [p for p in providers if same_url(p.get("url"), facts.expected_url)]
    applications = ak.applications()
    facts.applications = [
        {"slug": a.get("slug"), "name": a.get("name"), "provider": a.get("provider"),
         "backchannel_providers": list(a.get("backchannel_providers") or [])}
        for a in applications
    ]
    # With several, check the one that is attached (that is the one syncing).
    matches.sort(key=lambda p: _attachment(facts.applications, p) is None)
    facts.matches = [_public(p) for p in matches]
    cf_groups = ak.cf_groups(include_users=False)
    facts.cf_groups = [{"pk": g.get("pk"), "name": g.get("name")} for g in cf_groups]
    facts.default_mappings = _default_mappings(ak)
    if not matches:
        facts.cloudflare_ids = _cloudflare_ids(cf_client) if facts.cf_groups else {}  # what --fix would link
        return facts
    provider = matches[0]
    facts.provider = _public(provider)
    facts.application = _attachment(facts.applications, provider)
    if facts.application is None and provider.get("assigned_backchannel_application_slug"):
        facts.application = {"slug": provider["assigned_backchannel_application_slug"],
                             "name": provider.get("assigned_backchannel_application_name"), "as": "backchannel"}
    facts.token_check, facts.token_detail = _token_check(provider, facts.version, check_token, token_http_kwargs or {})
    if "group_filters" in provider or behaviours(facts.version)["group_filters"]:
        names = {g["pk"]: g["name"] for g in facts.cf_groups}
        scope = []
        for uuid in provider.get("group_filters") or []:
            if uuid not in names:
                group = ak.group(uuid, include_users=False)
                names[uuid] = group.get("name") if group else None
            scope.append({"pk": uuid, "name": names[uuid]})
        facts.scope = scope
    pk = provider.get("pk")
    facts.sync_status = ak.sync_status(pk)
    lines = log_lines(facts.sync_status.pop("legacy_messages", None) or [])
    # Signal and object-sync tasks hang off the provider; a full sync's failures sit in the page
    # tasks of its schedule, while the full sync itself logs only "info".
    for task in ak.provider_tasks(pk, problems_only=True, limit=5) + ak.schedule_tasks(pk, problems_only=True, limit=5):
        lines += log_lines(task.get("logs") or [])
    linked = {str(link.get("group")) for link in ak.scim_group_links(pk)}
    facts.unlinked = sorted(g["name"] for g in facts.cf_groups if str(g["pk"]) not in linked)
    if facts.unlinked:
        facts.cloudflare_ids = _cloudflare_ids(cf_client)
    if ak.cleans_up():
        facts.cleanup_victims = ak.cleanup_victims(pk, provider.get("group_filters") or [])
    if facts.application is not None:  # from before it was attached: that cause is gone
        lines = [line for line in lines if "Is it assigned to an application" not in line]
    facts.error_lines = list(dict.fromkeys(lines))[:MAX_ERROR_LINES]
    for pm in provider.get("property_mappings_group") or []:
        mapping = _optional(lambda: ak.scim_mapping(pm))
        if mapping and mapping.get("managed") != DEFAULT_GROUP_MAPPING:
            facts.custom_group_mappings.append(mapping.get("name") or str(pm))
    return facts


def _cloudflare_ids(cf_client):
    """Cloudflare's SCIM groups named like virtual groups: name -> id."""
    return {g.get("displayName"): g.get("id") for g in cf_client.scim_groups() if looks_like_virtual_group(g.get("displayName") or "")}


def _attachment(applications, provider):
    pk = provider.get("pk")
    for app in applications:
        if pk in app["backchannel_providers"]:
            return {"slug": app["slug"], "name": app["name"], "as": "backchannel"}
    for app in applications:
        if app.get("provider") == pk:
            return {"slug": app["slug"], "name": app["name"], "as": "provider"}
    return None


def _token_check(provider, version, check_token, http_kwargs):
    if (provider.get("auth_mode") or "token") != "token":
        return "not_token_auth", f"auth mode {provider.get('auth_mode')}"
    token = provider.get("token")
    if token:
        if not check_token:
            return "not_checked", ""
        return check_scim_token(provider.get("url"), token, **http_kwargs)
    if (version is not None and version_at_least(version, "2026.8")) or (version is None and "token" not in provider):
        return "write_only", "Authentik 2026.8 and later never return the token"
    return "not_returned", "Authentik did not return the token"


def _optional(read):
    """A read that older servers or limited tokens may not offer: None on 403/404."""
    try:
        return read()
    except AuthentikError as err:
        if err.status in (403, 404):
            return None
        raise


def _default_mappings(ak):
    """The built-in user and group mappings a new provider needs (without mappings nothing is sent)."""
    found = {}
    for key, managed in (("user", DEFAULT_USER_MAPPING), ("group", DEFAULT_GROUP_MAPPING)):
        mappings = _optional(lambda managed=managed: ak.scim_mappings(managed)) or []
        match = next((m for m in mappings if m.get("managed") == managed), None)
        if match:
            found[key] = match.get("pk")
    return found


# --- assessment (pure) -------------------------------------------------------------------------


def assess(facts: Facts) -> list:
    """Findings about the facts: each one line with the fix. No I/O."""
    out = []
    version, subject = facts.version, "authentik"

    def add(severity, code, message, action, about=None):
        out.append(Finding(severity, code, about or subject, message, action))

    if version is None:
        add("info", "authentik_version_unknown", "the token may not read /admin/version/, so the checks assume a current Authentik",
            "give the token's user permission to view system info, or read the version in the admin interface")
    elif not behaviours(version)["single_object_sync"]:
        add("error", "authentik_too_old_for_idp_mode",
            f"Authentik {version} has no single-object sync (/providers/scim/{{id}}/sync/object/, 2024.8): plan --mode idp is impossible",
            "upgrade Authentik to 2024.8 or later (2026.2+ recommended), or migrate with --mode api")
    if version is not None and not behaviours(version)["group_filters"]:
        add("warning", "every_group_syncs", f"Authentik {version} has no group_filters (2026.2): the provider pushes EVERY Authentik group to Cloudflare",
            "upgrade to 2026.2 or later to choose the groups, or accept that every group becomes a Cloudflare User Group")
    if version_tuple(version) and version_tuple(version)[:2] > version_tuple(NEWEST_KNOWN)[:2]:
        add("warning", "authentik_newer_than_known",
            f"Authentik {version} is newer than {NEWEST_KNOWN}, the last version vgmigrate was checked against; it may delete "
            "Cloudflare groups that leave the sync scope",
            "read the release notes for SCIM out-of-scope cleanup before changing group_filters")

    matches, provider = facts.matches, facts.provider
    if provider is None:
        nearby = [p for p in facts.providers if host_of(p.get("url")) == host_of(facts.expected_url)]
        hint = ""
        if nearby:
            hint = "; " + ", ".join(f"{p['name']!r} points at {p['url']}" for p in nearby[:3]) + " (another account?)"
        add("error", "no_scim_provider", f"no SCIM provider points at {facts.expected_url}{hint}",
            "run `vgmigrate idp check --fix` with CLOUDFLARE_SCIM_TOKEN set, or create one (Applications > Providers > "
            "SCIM) with that URL and Cloudflare's SCIM token")
        return sort_findings(out)
    name = provider.get("name") or f"provider {provider.get('pk')}"
    subject = name
    if len(matches) > 1:
        add("warning", "several_scim_providers",
            f"{len(matches)} SCIM providers point at this account ({', '.join(repr(p.get('name')) for p in matches)}); "
            "they push the same groups and undo each other's changes",
            "keep one (vgmigrate checks the attached one) and delete or detach the others")
    if facts.application is None:
        add("error", "provider_not_attached",
            f"SCIM provider {name!r} is not attached to any application, so it never syncs (its tasks log "
            "\"No provider found. Is it assigned to an application?\")",
            f"run `vgmigrate idp check --fix` (attaches it as backchannel provider of application {APP_SLUG!r}), or attach "
            "it in Applications > Applications > Edit > Backchannel providers")
    if provider.get("dry_run"):
        add("error", "dry_run_on", f"SCIM provider {name!r} is in dry-run mode: nothing reaches Cloudflare",
            "turn off Dry run on the provider (Applications > Providers > Edit); saving it starts a full sync")
    mode = provider.get("compatibility_mode")
    if mode and mode != "default":
        add("warning", "compatibility_mode", f"SCIM provider {name!r} uses compatibility mode {mode!r}, meant for another vendor",
            "set SCIM Compatibility Mode to Default for Cloudflare")
    check, detail = facts.token_check, facts.token_detail
    if check == "rejected":
        add("error", "scim_token_rejected", f"Cloudflare rejects the provider's token ({detail}): no sync can succeed",
            "create a new SCIM token in Cloudflare (Manage Account > Members > SCIM provisioning) and paste it into the provider's Token field")
    elif check == "unreachable":
        add("error", "scim_url_unreachable", f"the provider's URL could not be reached from here ({detail})",
            "check the URL and that Authentik can reach api.cloudflare.com")
    elif check == "unexpected":
        add("warning", "scim_token_unclear", f"the SCIM endpoint answered {detail} to the token check", "check the provider's URL")
    elif check == "write_only":
        add("info", "scim_token_unchecked", "the provider's token is write-only (Authentik 2026.8+): vgmigrate cannot check Cloudflare accepts it",
            "look at the last sync status below; an HTTP 401 there means: paste a new Cloudflare SCIM token into the provider")
    elif check == "not_token_auth":
        add("warning", "scim_not_token_auth", f"the provider authenticates with {detail}, not a token; Cloudflare's SCIM uses a bearer token",
            "set the provider's authentication mode to Token and paste Cloudflare's SCIM token")
    elif check == "not_returned":
        add("info", "scim_token_unchecked", "Authentik did not return the provider's token, so vgmigrate could not check it",
            "look at the last sync status below")

    if facts.scope is not None:
        scoped = {g["pk"] for g in facts.scope}
        if not scoped:
            add("warning", "syncs_all_groups", "group_filters is empty: every Authentik group is pushed to Cloudflare, not only the migrated ones",
                "add the groups to sync to the provider's Group filters (plan --mode idp adds the new ones)")
        else:
            for group in facts.cf_groups:
                if group["pk"] not in scoped:
                    add("warning", "cf_group_out_of_scope",
                        f"{group['name']!r} is not in the provider's group_filters: membership changes in Authentik no longer reach Cloudflare",
                        "add it to the provider's Group filters until the cutover removes it", about=group["name"])
            missing = [g for g in facts.scope if g["name"] is None]
            if missing:
                add("warning", "scope_group_missing", f"{len(missing)} group(s) in group_filters no longer exist in Authentik",
                    "remove them from the provider's Group filters")

    if facts.unlinked:
        add("error", "cf_group_not_linked",
            f"{len(facts.unlinked)} CF- group(s) have no link to Cloudflare through {name!r} ({', '.join(repr(n) for n in facts.unlinked[:3])}): "
            "this provider did not create them and Authentik does not adopt existing groups, so a cutover's removals would never reach Cloudflare",
            "run `vgmigrate idp check --fix`, which links each to the Cloudflare group of the same name (undo with "
            "`vgmigrate rollback --run <id>`), or migrate with --mode api")
    if facts.cleanup_victims:
        add("error", "group_filters_edit_deletes",
            f"Authentik {version} deletes in Cloudflare every linked group outside group_filters on each save of the provider: "
            f"{len(facts.cleanup_victims)} are outside it now ({', '.join(repr(n) for n in facts.cleanup_victims[:3])}), so the next edit "
            "(plan --mode idp makes one) deletes them, policies and all",
            "add those groups to the provider's Group filters before anything else saves the provider")
    status = facts.sync_status or {}
    last = status.get("last_sync_status")
    if last in ("error", "rejected"):
        add("error", "last_sync_failed", f"the last sync of {name!r} {'failed' if last == 'rejected' else 'ended with errors'} (status {last})",
            "read the errors below, fix their cause, then run a sync (Applications > Providers > Run sync)")
    elif last == "warning":
        add("warning", "last_sync_warnings", f"the last sync of {name!r} ended with warnings: some objects were not synced",
            "read the errors below and fix their cause")
    elif not status.get("last_successful_sync") and not status.get("is_running") and facts.application is not None:
        add("warning", "never_synced", f"{name!r} has no successful sync yet", "run a sync (Applications > Providers > Run sync) and check again")
    for line in facts.error_lines:
        add("error" if line.startswith(("error", "critical")) else "warning", "sync_error", f"sync log: {line}",
            "fix the cause in Authentik or Cloudflare, then sync again")
    for mapping in facts.custom_group_mappings:
        add("warning", "custom_group_mapping", f"group mapping {mapping!r} is not Authentik's default: Cloudflare may get other names than Authentik shows",
            "check that the mapping sends displayName = the group's name", about=mapping)
    return sort_findings(out)


class Report(checking.Report):
    def as_json(self):
        out = super().as_json()
        out.pop("default_mappings", None)
        return {**out, "behaviours": behaviours(self.facts.version)}


def check(cf_client, ak_client, **kwargs) -> Report:
    facts = gather(cf_client, ak_client, **kwargs)
    return Report(facts, assess(facts))


def render(report: Report) -> str:
    """The report for people: the state in a few lines, then one line per finding with its fix."""
    f = report.facts
    can = behaviours(f.version)
    lines = [f"Authentik {f.version or '(version unknown)'}; Cloudflare SCIM endpoint {f.expected_url}",
             "version:     " + ", ".join(f"{name.replace('_', ' ')} {'yes' if ok else 'NO'}" for name, ok in can.items())]
    p = f.provider
    if p is None:
        lines.append("provider:    none points at this account")
    else:
        lines.append(f"provider:    {p.get('name')!r} (pk {p.get('pk')}){' DRY RUN' if p.get('dry_run') else ''}")
        app = f.application
        lines.append(f"application: {app['slug']!r} ({app['as']} provider)" if app else "application: not attached")
        lines.append(f"token:       {f.token_check.replace('_', ' ')}" + (f" ({f.token_detail})" if f.token_detail else ""))
        if f.scope is None:
            lines.append("scope:       every group (this version has no group_filters)")
        elif not f.scope:
            lines.append("scope:       every group (group_filters is empty)")
        else:
            lines.append(f"scope:       {len(f.scope)} group(s): " + ", ".join(repr(g['name']) for g in f.scope[:6]) + (" ..." if len(f.scope) > 6 else ""))
        s = f.sync_status or {}
        lines.append(f"last sync:   {s.get('last_sync_status') or 'none'}" + (f", last success {s['last_successful_sync']}" if s.get("last_successful_sync") else "")
                     + (", running now" if s.get("is_running") else ""))
    lines.append(f"CF- groups:  {len(f.cf_groups)} in Authentik")
    if report.findings:
        lines.append("")
        for finding in report.findings:
            lines.append(f"{finding.severity:<8} {finding.code}: {finding.message}; fix: {finding.action}")
    else:
        lines.append("\nno problems found")
    return "\n".join(lines)


# --- fix ------------------------------------------------------------------------------------------


def plan_fix(facts: Facts, *, scim_token=None, application=None):
    """The changes that make the provider exist and sync: (steps, what is left for a person). Pure."""
    steps, left = [], []
    provider = facts.provider
    if provider is None:
        if not scim_token:
            raise UsageProblem("creating the SCIM provider needs Cloudflare's SCIM token: set CLOUDFLARE_SCIM_TOKEN (or pass --scim-token) "
                               "to the token from Cloudflare's SCIM provisioning setup")
        request = {"name": PROVIDER_NAME, "url": facts.expected_url, "auth_mode": "token", "token": scim_token}
        if facts.default_mappings.get("user"):
            request["property_mappings"] = [facts.default_mappings["user"]]
        if facts.default_mappings.get("group"):
            request["property_mappings_group"] = [facts.default_mappings["group"]]
        if behaviours(facts.version)["group_filters"]:
            # The CF- groups only (what provisions Cloudflare today); an empty list would push every group.
            request["group_filters"] = [g["pk"] for g in facts.cf_groups]
        scope = (f"syncing the {len(facts.cf_groups)} CF- group(s), whose members in Cloudflare then follow Authentik "
                 "(`vgmigrate scan --source authentik` shows where they differ now)" if "group_filters" in request
                 else "syncing EVERY group (this Authentik has no group_filters)")
        steps.append(FixStep("idp.provider", CreateScimProvider.kind, PROVIDER_NAME, request, None,
                             f"create SCIM provider {PROVIDER_NAME!r} -> {facts.expected_url}, {scope}"))
        pk = "$idp.provider"
    else:
        pk = provider.get("pk")
    if provider is None or facts.application is None:
        apps = {a["slug"]: a for a in facts.applications}
        slug = application or APP_SLUG
        app = apps.get(slug)
        if application and app is None:
            raise UsageProblem(f"no Authentik application with slug {application!r}; leave out --application to create {APP_SLUG!r}")
        if app is None:
            steps.append(FixStep("idp.application", CreateApplication.kind, slug,
                                 {"name": APP_NAME, "slug": slug, "backchannel_providers": [pk]}, None,
                                 f"create application {slug!r} with the provider as its backchannel provider "
                                 "(with no policy bindings, every Authentik user is in the provider's user scope)"))
        else:
            prior = list(app["backchannel_providers"])
            steps.append(FixStep("idp.attach", AttachBackchannelProvider.kind, slug,
                                 {"slug": slug, "provider": pk, "backchannel_providers": prior + [pk]}, {"backchannel_providers": prior},
                                 f"attach the provider to application {slug!r} as a backchannel provider"))
    # CF- groups without a link (all of them, for a new provider) get one to the Cloudflare group of
    # the same name, so the cutover's removals reach it.
    unlinked = set(facts.unlinked) if provider is not None else {g["name"] for g in facts.cf_groups}
    to_link = [g for g in facts.cf_groups if g["name"] in unlinked and g["name"] in facts.cloudflare_ids]
    for n, group in enumerate(to_link, 1):
        scim_id = facts.cloudflare_ids[group["name"]]
        steps.append(FixStep(f"idp.link{n:03d}", LinkCfGroup.kind, group["name"], {"provider": pk, "group": group["pk"], "scim_id": scim_id},
                             None, f"link Authentik group {group['name']!r} to Cloudflare group {scim_id}, so a cutover's removals reach it"))
    if provider is not None:
        codes = {"dry_run_on", "scim_token_rejected", "scim_url_unreachable", "cf_group_out_of_scope", "syncs_all_groups",
                 "last_sync_failed", "compatibility_mode", "scim_not_token_auth", "authentik_too_old_for_idp_mode"}
        left = [f for f in assess(facts) if f.code in codes]
    return steps, left


def apply_fix(cf_client, inventory, steps, *, provider_pk=None, sync=True):
    """Carry out the fix steps in one journaled `idp_fix` run, then (`sync`) start a full sync so
    the next check shows the new set-up's status rather than the failures from before (a sync
    changes no setting, so it is not journaled). Returns (run id, [description of each step done]);
    a one-line error at the first step that fails."""
    fix, run_id = checking.run_fix(cf_client, inventory, steps)
    done = [s.description for s in steps]
    provider_pk = fix.ids.get("idp.provider", provider_pk)
    if sync and steps and provider_pk is not None:
        ak = cf_client.idp
        before = ak.sync_status(provider_pk)
        how = ak.full_sync(provider_pk)
        # The sync runs in Authentik's worker: wait for it, so the next check shows its outcome.
        left = wait_until(lambda: (_sync_finished(ak.sync_status(provider_pk), before), True), ak.sync_timeout,
                          "Authentik's full sync to finish")
        started = "started a full sync" + (" (by saving the provider unchanged)" if how == "save" else "")
        done.append(started + (f"; it had not finished after {ak.sync_timeout:g} s" if left else " and waited for it"))
    return run_id, done


def _sync_finished(status, before):
    """A full sync started after `before` (a sync status) has finished."""
    ended = (status.get("last_successful_sync"), status.get("last_sync_status"))
    return not status.get("is_running") and status.get("last_sync_status") is not None and (
        ended != (before.get("last_successful_sync"), before.get("last_sync_status")) or before.get("is_running"))
