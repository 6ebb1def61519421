"""`vgmigrate idp check [--fix]` for Okta: is Okta set up to provision this Cloudflare account, and
can a cutover reach every CF- group?

Cloudflare's "Provision with Okta" page as checks: an app whose provisioning connection points at
this account's SCIM endpoint (its SCIM 2.0 Base URL), provisioning on (create and deactivate
users), Group Push on; then the migration's needs: every CF- group pushed by an ACTIVE mapping
(else removing members from it in Okta never reaches Cloudflare), and what the mappings and the
System Log say went wrong. `gather` reads (the only I/O), `assess` turns the facts into findings
(pure), and `--fix` links each CF- group without a mapping to its Cloudflare group (through the app
group Okta imported for it), journaled as a run of kind `idp_fix` that `vgmigrate rollback --run <id>`
undoes. The report and fix shapes are the Authentik check's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone

from ..errors import OktaError
from ..findings import Finding, sort_findings
from ..http import same_url
from ..steps import LinkPushMapping
from . import checking
from .checking import FixStep, host_of

MAX_ERROR_LINES = 10
PROVISION_EVENTS = "application.provision."
AFTER_FIX = "then Okta pushes each linked group's members: Cloudflare's CF- group then follows Okta's"  # what `--fix` says last


@dataclass
class Facts:
    account_id: str
    expected_url: str  # this account's SCIM endpoint
    apps: list = field(default_factory=list)  # every active app that provisions somewhere: {id, label, url, status}
    matches: list = field(default_factory=list)  # those provisioning expected_url
    app: dict | None = None  # the one checked: {id, label, name, features}
    connection: dict | None = None  # its provisioning connection: {status, baseUrl}
    create_users: bool | None = None  # USER_PROVISIONING capabilities; None: could not be read
    deactivate_users: bool | None = None
    group_push: bool = False
    cf_groups: list = field(default_factory=list)  # Okta's CF- groups: {pk, name}
    assigned: list = field(default_factory=list)  # ids of the groups assigned to the app
    mappings: list = field(default_factory=list)  # of CF- groups: {id, group, name, status, lastPush, errorSummary}
    unmapped: list = field(default_factory=list)  # CF- groups with no mapping: {pk, name}
    linkable: dict = field(default_factory=dict)  # CF- group pk -> the app group (imported) of the same name
    error_lines: list = field(default_factory=list)  # provisioning failures in the System Log, newest last

    @property
    def provider(self):
        """The app in the engine's words (the IdP's object that pushes to Cloudflare), or None."""
        return {"pk": self.app["id"], "name": self.app["label"]} if self.app else None

    def as_json(self):
        return asdict(self)


def gather(cf_client, okta):
    """Read everything `assess` needs. Raises OktaError (one line) when the token is refused."""
    okta.me()  # a wrong token or a missing okta.groups.read fails here, with the fix, before anything else
    facts = Facts(cf_client.account_id, cf_client.scim_url())
    facts.cf_groups = [{"pk": g["pk"], "name": g["name"]} for g in okta.cf_groups(include_users=False)]
    candidates = [okta.app(okta.app_id)] if okta.app_id else okta.apps()
    for app in [a for a in candidates if a]:
        connection = okta.connection(app["id"])
        if connection and connection.get("baseUrl"):
            entry = {"id": app["id"], "label": app.get("label"), "url": connection.get("baseUrl"), "status": connection.get("status")}
            facts.apps.append(entry)
            if same_url(connection.get("baseUrl"), facts.expected_url):
                facts.matches.append(dict(entry, app=app, connection=connection))
    if not facts.matches:
        return facts
    # With several, check the one whose provisioning is on (that is the one pushing).
    facts.matches.sort(key=lambda m: m["status"] != "ENABLED")
    chosen = facts.matches[0]
    app, facts.connection = chosen.pop("app"), chosen.pop("connection")
    for match in facts.matches[1:]:
        match.pop("app"), match.pop("connection")
    facts.app = {"id": app["id"], "label": app.get("label"), "name": app.get("name"), "features": list(app.get("features") or [])}
    facts.group_push = "GROUP_PUSH" in facts.app["features"]
    feature = next((f for f in okta.features(app["id"]) if f.get("name") == "USER_PROVISIONING"), None)
    if feature is not None:
        capabilities = feature.get("capabilities") or {}
        facts.create_users = ((capabilities.get("create") or {}).get("lifecycleCreate") or {}).get("status") == "ENABLED"
        facts.deactivate_users = ((capabilities.get("update") or {}).get("lifecycleDeactivate") or {}).get("status") == "ENABLED"
    facts.assigned = okta.scope_of(app["id"])
    names = {g["pk"]: g["name"] for g in facts.cf_groups}
    by_group = {}
    if facts.group_push:
        for mapping in okta.mappings(app["id"]):
            if mapping.get("sourceGroupId") in names:
                by_group[mapping["sourceGroupId"]] = mapping
                facts.mappings.append({"id": mapping["id"], "group": mapping["sourceGroupId"], "name": names[mapping["sourceGroupId"]],
                                       "status": mapping.get("status"), "lastPush": mapping.get("lastPush"),
                                       "errorSummary": mapping.get("errorSummary") or ""})
        facts.unmapped = [g for g in facts.cf_groups if g["pk"] not in by_group]
        if facts.unmapped:
            imported = {}
            for group in okta.app_groups(app["id"]):
                imported.setdefault(group["name"], group["pk"])
            facts.linkable = {g["pk"]: imported[g["name"]] for g in facts.unmapped if g["name"] in imported}
    facts.error_lines = _failures(okta, app["id"])
    return facts


def _failures(okta, app_id):
    """One line per provisioning failure of this app in the last week of the System Log (the token
    may lack okta.logs.read: then none, and the report says the log was not read)."""
    since = (datetime.now(timezone.utc) - timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    try:
        events = okta.logs('outcome.result eq "FAILURE"', since)
    except OktaError as err:
        if err.status == 403:
            return ["the System Log could not be read (the token needs okta.logs.read, or a read-only admin role)"]
        raise
    lines = []
    for event in events:
        if not str(event.get("eventType") or "").startswith(PROVISION_EVENTS):
            continue
        if not any(t.get("id") == app_id for t in event.get("target") or []):
            continue
        reason = (event.get("outcome") or {}).get("reason") or "no reason given"
        lines.append(f"{event.get('published', '')[:19]} {event.get('displayMessage') or event.get('eventType')}: {reason}")
    return list(dict.fromkeys(lines))[-MAX_ERROR_LINES:]


# --- assessment (pure) -------------------------------------------------------------------------


def assess(facts: Facts) -> list:
    """Findings about the facts: each one line with the fix. No I/O."""
    out = []

    def add(severity, code, message, action, about=None):
        out.append(Finding(severity, code, about or subject, message, action))

    subject = "okta"
    if facts.app is None:
        nearby = [a for a in facts.apps if host_of(a["url"]) == host_of(facts.expected_url)]
        hint = ""
        if nearby:
            hint = "; " + ", ".join(f"{a['label']!r} provisions {a['url']}" for a in nearby[:3]) + " (another account?)"
        add("error", "no_okta_app", f"no Okta app provisions {facts.expected_url}{hint}",
            "in the Cloudflare app in Okta (Provisioning > Integration), set the SCIM 2.0 Base URL to it and the API token "
            "to Cloudflare's SCIM token, or set OKTA_APP_ID to the app that provisions this account")
        return sort_findings(out)
    label = facts.app["label"] or facts.app["id"]
    subject = label
    if len(facts.matches) > 1:
        add("warning", "several_okta_apps",
            f"{len(facts.matches)} Okta apps provision this account ({', '.join(repr(m['label']) for m in facts.matches)}); "
            "they push the same users and groups and undo each other's changes",
            "keep one (vgmigrate checks the one whose provisioning is on) and turn off provisioning in the others")
    if (facts.connection or {}).get("status") != "ENABLED":
        add("error", "provisioning_off", f"provisioning of Okta app {label!r} is off: nothing reaches Cloudflare",
            "enable the API integration (the app's Provisioning tab > Integration) with Cloudflare's SCIM token")
    if facts.create_users is False:
        add("error", "create_users_off", f"Okta app {label!r} does not create users: a member not yet in Cloudflare is never pushed",
            "enable Create Users (Provisioning > To App)")
    if facts.deactivate_users is False:
        add("warning", "deactivate_users_off",
            f"Okta app {label!r} does not deactivate users: someone removed from every assigned group keeps their Cloudflare membership",
            "enable Deactivate Users (Provisioning > To App)")
    if not facts.group_push:
        add("error", "group_push_off", f"Group Push is off in Okta app {label!r}: neither the new groups nor a cutover's removals reach Cloudflare",
            "turn on Group Push for the app (its Push Groups tab)")
        return sort_findings(out)
    by_pk = {g["pk"]: g["name"] for g in facts.unmapped}
    if facts.unmapped:
        fixable = [by_pk[pk] for pk in facts.linkable]
        rest = [g["name"] for g in facts.unmapped if g["pk"] not in facts.linkable]
        action = ("run `vgmigrate idp check --fix`, which links each to its Cloudflare group (undo with `vgmigrate rollback --run <id>`)"
                  if not rest else
                  "turn on Import Groups (Provisioning > Integration), import the app's groups, then run `vgmigrate idp check --fix` "
                  "to link each to its Cloudflare group; or migrate with --mode api")
        add("error", "cf_group_not_pushed",
            f"{len(facts.unmapped)} CF- group(s) have no Group Push mapping in {label!r} "
            f"({', '.join(repr(g['name']) for g in facts.unmapped[:3])}): a cutover's removals in Okta would never reach Cloudflare"
            + (f"; {len(fixable)} can be linked now" if fixable and rest else ""), action)
    for mapping in facts.mappings:
        if mapping["status"] == "ERROR":
            add("error", "push_mapping_error", f"the Group Push of {mapping['name']!r} failed: {mapping['errorSummary'] or 'no reason given'}",
                "fix the cause, then push it again (Push Groups > the group > Push now)", about=mapping["name"])
        elif mapping["status"] == "INACTIVE":
            add("warning", "push_mapping_inactive", f"the Group Push of {mapping['name']!r} is inactive: membership changes do not reach Cloudflare",
                "activate it (Push Groups > the group > Activate push) until the cutover is done", about=mapping["name"])
    for line in facts.error_lines:
        add("warning", "provisioning_error", f"System Log: {line}", "fix the cause in Okta or Cloudflare, then push again")
    return sort_findings(out)


class Report(checking.Report):
    def as_json(self):
        return {**super().as_json(), "idp": "okta"}


def check(cf_client, okta, **kwargs) -> Report:
    facts = gather(cf_client, okta)
    return Report(facts, assess(facts))


def render(report: Report) -> str:
    """The report for people: the state in a few lines, then one line per finding with its fix."""
    f = report.facts
    lines = [f"Okta; Cloudflare SCIM endpoint {f.expected_url}"]
    if f.app is None:
        lines.append("app:          none provisions this account")
    else:
        lines.append(f"app:          {f.app['label']!r} ({f.app['id']})")
        lines.append(f"provisioning: {(f.connection or {}).get('status', 'unknown').lower()}"
                     + f", create users {_yes(f.create_users)}, deactivate users {_yes(f.deactivate_users)}")
        lines.append(f"group push:   {'on' if f.group_push else 'OFF'}")
        counts = {}
        for m in f.mappings:
            counts[m["status"]] = counts.get(m["status"], 0) + 1
        lines.append("mappings:     " + (", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items())) or "none")
                     + f" of {len(f.cf_groups)} CF- group(s); {len(f.unmapped)} without one")
        for m in f.mappings:
            extra = f", last push {m['lastPush']}" if m.get("lastPush") else ""
            extra += f", error: {m['errorSummary']}" if m.get("errorSummary") else ""
            lines.append(f"  {m['status']:<8} {m['name']}{extra}")
    lines.append(f"CF- groups:   {len(f.cf_groups)} in Okta")
    if report.findings:
        lines.append("")
        for finding in report.findings:
            lines.append(f"{finding.severity:<8} {finding.code}: {finding.message}; fix: {finding.action}")
    else:
        lines.append("\nno problems found")
    return "\n".join(lines)


def _yes(value):
    return "unknown" if value is None else ("yes" if value else "NO")


# --- fix ------------------------------------------------------------------------------------------


def plan_fix(facts: Facts, **_):
    """The changes `--fix` makes: (steps, what is left for a person). Pure.

    Each CF- group without a mapping whose Cloudflare group Okta has imported gets an ACTIVE mapping
    linked to it. Everything else (provisioning, Group Push, a failed push, groups never imported)
    is a person's to change in Okta's admin console."""
    steps = []
    if facts.app is not None and facts.group_push:
        names = {g["pk"]: g["name"] for g in facts.unmapped}
        for n, (pk, target) in enumerate(sorted(facts.linkable.items(), key=lambda item: names[item[0]]), 1):
            steps.append(FixStep(f"idp.push{n:03d}", LinkPushMapping.kind, names[pk], {"app": facts.app["id"], "group": pk, "target": target},
                                 None, f"link Okta group {names[pk]!r} to its Cloudflare group with an ACTIVE Group Push mapping"))
    linked = set(facts.linkable)
    left = [f for f in assess(facts) if f.code != "cf_group_not_pushed" or any(g["pk"] not in linked for g in facts.unmapped)]
    left = [f for f in left if f.severity in ("critical", "error", "warning")]
    return steps, left


def apply_fix(cf_client, inventory, steps, **_):
    """Carry out the fix steps in one journaled `idp_fix` run. Returns (run id, [what was done]); a
    one-line error at the first step that fails. Okta pushes each linked group's members at once
    (asynchronously): Cloudflare's CF- group then follows Okta's."""
    _, run_id = checking.run_fix(cf_client, inventory, steps)
    return run_id, [s.description for s in steps]
