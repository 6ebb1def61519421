"""`vgmigrate idp check [--fix]` for Entra ID: is Entra set up to provision this Cloudflare account?

Cloudflare's Entra page as checks: an enterprise application whose provisioning job pushes to this
account (found by the account's CF- groups assigned to it: Graph never returns the Tenant URL),
the job running (not paused, not in quarantine, its last cycle without errors), the CF- groups
assigned to it, recent provisioning failures, and what the tool's token may do (its roles).
`gather` reads (the only I/O), `assess` turns facts into findings (pure), `plan_fix` and
`apply_fix` assign unassigned CF- groups in a journaled `idp_fix` run that rollback undoes.
The report and finding shapes are `check.py`'s.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ..errors import EntraError, VgmigrateError
from ..findings import Finding, sort_findings
from ..steps import AssignIdpGroup
from . import checking
from .checking import FixStep
from .entra import CYCLE_MINUTES, REQUIRED_PERMISSIONS, token_roles

MAX_ERROR_LINES = 10
# A role that covers another's reads and writes (Graph's permission pages).
COVERS = {"Group.ReadWrite.All": {"Directory.ReadWrite.All"},
          "Application.Read.All": {"Application.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"},
          "AppRoleAssignment.ReadWrite.All": set(), "Synchronization.ReadWrite.All": set(), "AuditLog.Read.All": set()}


@dataclass
class Facts:
    account_id: str
    expected_url: str
    roles: list | None = None  # the token's application permissions; None: not a JWT (a given token)
    application: dict | None = None  # {id, name, app_id}
    app_error: str = ""  # why none was found (one line)
    job: dict | None = None  # {id, status, schedule_state, quarantine, last_state, last_error, next_cycle_minutes}
    cf_groups: list = field(default_factory=list)  # this account's CF- groups: {pk, name}
    other_cf_groups: list = field(default_factory=list)  # CF- groups naming another account
    assigned: list = field(default_factory=list)  # pks of the CF- groups assigned to the application
    error_lines: list = field(default_factory=list)  # recent provisioning failures
    denied: dict = field(default_factory=dict)  # permission -> the call Graph refused (403)

    @property
    def provider(self):
        """The application as the CLI names a provider ({"pk"}), or None."""
        return {"pk": self.application["id"], "name": self.application["name"]} if self.application else None

    def as_json(self):
        return asdict(self)


def _denied(facts, read, default=None):
    """A read, or `default` when Graph refuses it (403): the refusal is a fact, not a crash."""
    try:
        return read()
    except EntraError as err:
        if err.status != 403:
            raise
        facts.denied[err.permission] = f"{err.method} {err.path}"
        return default


def gather(cf_client, entra, **_):
    entra.me()  # a wrong secret or a token without group access fails here, with its fix
    facts = Facts(cf_client.account_id, cf_client.scim_url(), roles=token_roles(entra.token.get()))
    groups = entra.cf_groups(include_users=None)
    account = cf_client.account_id.lower()
    for g in groups:
        (facts.cf_groups if account in g["name"].lower() else facts.other_cf_groups).append({"pk": g["pk"], "name": g["name"]})
    try:
        sp, job = entra.find_provider(cf_client.account_id)
    except EntraError as err:
        if err.status != 403:
            raise
        facts.denied[err.permission] = f"{err.method} {err.path}"
        return facts
    except VgmigrateError as err:
        facts.app_error = str(err)
        return facts
    facts.application = {"id": sp["id"], "name": sp.get("displayName"), "app_id": sp.get("appId")}
    status = job.get("status") or {}
    last = status.get("lastExecution") or {}
    quarantine = status.get("quarantine") or None
    facts.job = {"id": job["id"], "status": status.get("code"), "schedule_state": (job.get("schedule") or {}).get("state"),
                 "quarantine": None if not quarantine else {"reason": quarantine.get("reason"), "since": quarantine.get("seriesBegan"),
                                                            "error": (quarantine.get("error") or {}).get("message")},
                 "last_state": last.get("state"), "last_error": (last.get("error") or {}).get("message"),
                 "next_cycle_minutes": entra.cycle_estimate(job)}
    facts.assigned = _denied(facts, lambda: entra.scope_of(sp["id"]), []) or []
    entries = _denied(facts, lambda: entra.provisioning_log(sp["id"], limit=50), []) or []
    lines = []
    for entry in entries:
        info = entry.get("provisioningStatusInfo") or {}
        if info.get("status") == "failure":
            reason = (info.get("errorInformation") or {}).get("reason") or "no reason given"
            lines.append(f"{entry.get('activityDateTime')} {entry.get('provisioningAction')} "
                         f"{(entry.get('sourceIdentity') or {}).get('displayName')!r}: {reason}")
    facts.error_lines = list(dict.fromkeys(lines))[:MAX_ERROR_LINES]
    return facts


def missing_permissions(roles):
    """The permissions vgmigrate needs that the token's roles do not cover (None: roles unknown)."""
    if roles is None:
        return None
    have = set(roles)
    return [p for p in REQUIRED_PERMISSIONS if p not in have and not (COVERS.get(p, set()) & have)]


def assess(facts: Facts) -> list:
    out = []

    def add(severity, code, message, action, about="entra"):
        out.append(Finding(severity, code, about, message, action))

    for permission in missing_permissions(facts.roles) or []:
        add("error", "permission_missing", f"the app registration's token lacks the application permission {permission}",
            f"add {permission} under API permissions (Microsoft Graph, Application) and grant admin consent", about=permission)
    for permission, call in sorted(facts.denied.items()):
        if facts.roles is not None and permission in (missing_permissions(facts.roles) or []):
            continue
        add("error", "permission_denied", f"Graph refused {call} (HTTP 403): the token lacks {permission}",
            f"add {permission} under API permissions (Microsoft Graph, Application) and grant admin consent", about=permission)
    if facts.roles is None:
        add("info", "permissions_unknown", "the given ENTRA_ACCESS_TOKEN is not a JWT, so its permissions were not read",
            "use ENTRA_TENANT_ID, ENTRA_CLIENT_ID and ENTRA_CLIENT_SECRET to have them checked")
    for g in facts.other_cf_groups:
        add("warning", "cf_group_other_account", f"{g['name']!r} names another Cloudflare account", "leave it; this check is about "
            f"account {facts.account_id}", about=g["name"])
    if facts.application is None:
        add("error", "no_enterprise_application", facts.app_error or "no enterprise application provisioning this account was found",
            "follow Cloudflare's Entra page: create an enterprise application (non-gallery), set Provisioning Mode to Automatic "
            f"with Tenant URL {facts.expected_url} and Cloudflare's SCIM token as Secret Token, assign the CF- groups, "
            "start provisioning; set ENTRA_APP to its name if several exist")
        return sort_findings(out)
    name = facts.application["name"]
    add("info", "tenant_url_not_readable",
        f"Graph does not return an application's Tenant URL; {name!r} was taken to provision {facts.expected_url} because this "
        "account's CF- groups are assigned to it", "set ENTRA_APP to choose another application", about=name)
    job = facts.job or {}
    if job.get("quarantine") or job.get("status") == "Quarantine":
        q = job.get("quarantine") or {}
        add("error", "job_quarantined", f"the provisioning job of {name!r} is in quarantine since {q.get('since')} ({q.get('error') or q.get('reason')}): "
            "nothing reaches Cloudflare", "check the Tenant URL and Secret Token (Test Connection) on its Provisioning page, then "
            "restart provisioning", about=name)
    elif job.get("status") == "Paused" or job.get("schedule_state") in ("Disabled", "Paused"):
        add("error", "job_stopped", f"the provisioning job of {name!r} is stopped", "set Provisioning Status to On and save", about=name)
    elif job.get("last_state") == "Failed":
        add("error", "last_cycle_failed", f"the last provisioning cycle of {name!r} failed: {job.get('last_error') or 'no detail'}",
            "read the provisioning logs, fix the cause, then restart provisioning", about=name)
    assigned = set(facts.assigned)
    for g in facts.cf_groups:
        if g["pk"] not in assigned:
            add("error", "cf_group_not_assigned",
                f"{g['name']!r} is not assigned to {name!r}: Entra does not provision it, so a cutover's removals would never reach Cloudflare",
                "run `vgmigrate idp check --fix` (assigns it; undo with `vgmigrate rollback --run <id>`), or assign it under "
                "Users and groups", about=g["name"])
    for line in facts.error_lines:
        add("warning", "provisioning_failure", f"provisioning log: {line}", "fix the cause in Entra or Cloudflare; the next cycle retries it")
    if job.get("next_cycle_minutes") is not None:
        add("info", "next_cycle", f"the next provisioning cycle of {name!r} runs in about {job['next_cycle_minutes']} min (every {CYCLE_MINUTES} min); "
            "vgmigrate pushes its groups on demand instead", "nothing to do", about=name)
    return sort_findings(out)


Report = checking.Report


def check(cf_client, entra, **kwargs) -> Report:
    facts = gather(cf_client, entra, **kwargs)
    return Report(facts, assess(facts))


def render(report: Report) -> str:
    f = report.facts
    lines = [f"Entra ID; Cloudflare SCIM endpoint {f.expected_url}"]
    lines.append("token:       " + ("roles not readable" if f.roles is None else (", ".join(f.roles) or "no application permissions")))
    app = f.application
    lines.append(f"application: {app['name']!r} ({app['id']})" if app else "application: none found")
    if f.job:
        j = f.job
        lines.append(f"job:         {j['status']}" + (f", last cycle {j['last_state']}" if j.get("last_state") else "")
                     + (f", next in about {j['next_cycle_minutes']} min" if j.get("next_cycle_minutes") is not None else ""))
    assigned = set(f.assigned)
    lines.append(f"CF- groups:  {len(f.cf_groups)} in Entra, {sum(1 for g in f.cf_groups if g['pk'] in assigned)} assigned")
    if report.findings:
        lines.append("")
        for finding in report.findings:
            lines.append(f"{finding.severity:<8} {finding.code}: {finding.message}; fix: {finding.action}")
    else:
        lines.append("\nno problems found")
    return "\n".join(lines)


def plan_fix(facts: Facts, **_):
    """(steps, findings left for a person): assign each unassigned CF- group of this account. Pure."""
    if facts.application is None:
        return [], [f for f in assess(facts) if f.code == "no_enterprise_application"]
    provider = facts.application["id"]
    assigned = set(facts.assigned)
    steps = [FixStep(f"idp.assign{n:03d}", AssignIdpGroup.kind, g["name"], {"provider": provider, "group": g["pk"]}, None,
                     f"assign {g['name']!r} to Entra application {facts.application['name']!r}, so Entra provisions it")
             for n, g in enumerate((g for g in facts.cf_groups if g["pk"] not in assigned), 1)]
    left = [f for f in assess(facts) if f.code in ("job_quarantined", "job_stopped", "last_cycle_failed", "permission_missing",
                                                   "permission_denied")]
    return steps, left


def apply_fix(cf_client, inventory, steps, **_):
    """The fix steps in one journaled `idp_fix` run: (run id, [what was done])."""
    _, run_id = checking.run_fix(cf_client, inventory, steps)
    return run_id, [s.description for s in steps]
