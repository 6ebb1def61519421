"""Inventory -> Plan. Pure: no network, no writes.

A plan names every object it will touch, what it expects to find there, and the ordered steps
(each with its inverse) that turn virtual groups into User Groups. Steps refer to objects created
by earlier steps as "$<step id>"; the executor fills the real ids in from its journal.
"""

import hashlib
import re
import string
from dataclasses import dataclass, field

from . import iam
from .collector import cycle_collection_paused
from .errors import VgmigrateError
from .findings import NO_BREAK_GLASS, Finding, sort_findings
from .roles import role_resolver
from .steps import AddMembers, AdoptUserGroup, AttachIdpPolicy, CreateIdpGroup, CreateResourceGroup, CreateUserGroup, ScopeIdpGroups, SyncIdpGroup, creates_policy

TEMPLATE_FIELDS = {"role", "vg_role", "account"}


@dataclass(frozen=True)
class PlanOptions:
    name_template: str = "{role}"
    on_existing: str = "fail"  # fail | adopt | suffix
    only: tuple = ()
    mode: str = "api"
    mapping: dict = field(default_factory=dict)


def check_template(template):
    """Reject a --name-template that names unknown fields, before any work."""
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as err:
        raise VgmigrateError(f"--name-template {template!r} is malformed ({err}); use fields like {{role}}") from None
    unknown = fields - TEMPLATE_FIELDS
    if unknown or not fields:
        raise VgmigrateError(
            f"--name-template {template!r} must use only {', '.join('{' + f + '}' for f in sorted(TEMPLATE_FIELDS))}"
        )


def check_break_glass(plan, allow):
    """Refuse a plan whose scan found no accepted Super Administrator outside SCIM, unless the
    approver allows it: then the plan says so, so the approval shows the override."""
    if not any(f["code"] == NO_BREAK_GLASS for f in plan["findings"]):
        return
    if not allow:
        raise VgmigrateError(
            f"{NO_BREAK_GLASS}: no accepted Super Administrator of account {plan['account']['id']} holds the role "
            "outside the virtual groups, so a SCIM mistake during the migration could lock everyone out; grant Super "
            "Administrator directly to a break-glass member, scan again and plan again "
            "(or pass --allow-no-break-glass to plan anyway)"
        )
    plan["options"]["allow_no_break_glass"] = True


# Scan tables build_plan never reads: load_scan(without=UNREAD_TABLES). At 100,000 members their
# decoded JSON would be most of a plan's memory (a generated account has a role per group).
UNREAD_TABLES = ("members", "roles", "held_access")


@cycle_collection_paused()
def build_plan(data, options, own_groups=None, idp=None):
    """Plan the migration of one scan.

    data: inventory.load_scan() output, UNREAD_TABLES may be left out. own_groups:
    inventory.own_groups(), the User Groups that earlier runs of this tool created, adopted or
    filled (from the journal), so that re-planning after an apply shows nothing to do, even before
    the next scan. idp: for `--mode idp`, what the IdP holds (its plan_facts). Returns a plan
    dict without plan_id (planfile adds it).
    """
    check_template(options.name_template)
    if options.mode == "idp" and idp is None:
        raise VgmigrateError("--mode idp needs the IdP: set AUTHENTIK_URL and AUTHENTIK_TOKEN, OKTA_ORG_URL and OKTA_API_TOKEN, or the ENTRA_ variables")
    if options.mode == "idp" and options.on_existing == "adopt":
        raise VgmigrateError("--mode idp cannot adopt an existing group (its members would become the IdP's); "
                             "use --on-existing suffix or another --name-template")
    account_id = data["scan"]["account_id"]
    targets, skipped, granted = _targets(data, options)
    draft = _Draft(data, options, own_groups or {}, idp)
    for n, target in enumerate(sorted(targets.values(), key=lambda t: t["name"]), 1):
        plan_group = _plan_idp_group if options.mode == "idp" else _plan_api_group
        draft.groups.append(plan_group(draft, f"g{n:03d}", target))
    steps = draft.ordered_steps()
    if not draft.rg and creates_policy(steps):
        steps.insert(0, CreateResourceGroup.build(account_id))
    for c in draft.conflicts:
        draft.findings.append(_conflict_finding(c, targets[iam.name_key(c["name"])]["permission_group"]["name"]))

    rg = draft.rg
    scan_findings = [Finding.from_row(f) for f in data["findings"]]
    return {
        "format": 1,
        "account": {"id": account_id, "name": data["scan"].get("account_name")},
        "source": data["scan"]["source"],
        "scan": {"id": data["scan"]["id"], "finished_at": data["scan"]["finished_at"], "fingerprint": data["scan"]["fingerprint"]},
        "options": {
            "mode": options.mode,
            "name_template": options.name_template,
            "on_existing": options.on_existing,
            "only": list(options.only),
            "mapping": dict(options.mapping),
        },
        "resource_group": {"id": rg["id"], "name": rg.get("name")} if rg else {"create": iam.account_scope_key(account_id)},
        **({"idp": _idp_summary(idp)} if options.mode == "idp" else {}),
        "expected": draft.expected,
        "groups": draft.groups,
        "skipped": skipped,
        "conflicts": draft.conflicts,
        "findings": [f.as_row() for f in sort_findings(scan_findings + draft.findings)],
        "access": access_picture(data["virtual_group_members"], draft.groups, granted),
        "steps": steps,
    }


def _targets(data, options):
    """The User Groups the scan's virtual groups become: (targets by name key, skipped virtual
    groups, granted: virtual group id -> (the name its members hold it under today, how its role
    resolved, its role))."""
    account_id = data["scan"]["account_id"]
    resolve = role_resolver([pg["raw"] for pg in data["permission_groups"]], options.mapping)
    # Without the mapping file: whether a mapped role is another permission group than the one held.
    same_role = role_resolver([pg["raw"] for pg in data["permission_groups"]]) if options.mapping else None
    memberships = {}
    for link in data["virtual_group_members"]:
        memberships.setdefault(link["virtual_group_id"], []).append(link)

    only = {iam.name_key(o) for o in options.only}
    targets, skipped = {}, []
    member_dicts = {}  # one dict per distinct member, however many groups list it
    granted = {}
    for vg in data["virtual_groups"]:
        if only and not only & {iam.name_key(vg["name"]), iam.name_key(vg["role"]), iam.name_key(vg.get("permission_group_name"))}:
            continue
        if vg["account_id"] != account_id:
            skipped.append({"virtual_group": vg["name"], "reason": "names another account"})
            continue
        granted[vg["id"]] = (vg["role"], None, vg["role"])
        res = resolve(vg["role"])
        if res.status != "resolved":
            skipped.append({"virtual_group": vg["name"], "reason": res.message})
            continue
        pg = res.permission_group
        granted[vg["id"]] = _held_under(vg["role"], res, same_role)
        name = options.name_template.format(role=pg["name"], vg_role=vg["role"], account=account_id).strip()
        if iam.is_reserved_name(name):
            raise VgmigrateError(
                f"target name {name!r} starts with CF, which Cloudflare reserves; choose another --name-template"
            )
        target = targets.setdefault(
            iam.name_key(name),
            {"name": name, "permission_group": {"id": pg["id"], "name": pg["name"]}, "virtual_groups": [], "members": {}},
        )
        if target["permission_group"]["id"] != pg["id"]:
            raise VgmigrateError(
                f"--name-template gives {name!r} to groups with different roles "
                f"({target['permission_group']['name']!r} and {pg['name']!r}); include {{role}} in the template"
            )
        target["virtual_groups"].append({"name": vg["name"], "id": vg["id"], "role": vg["role"], "resolution": res.method})
        for link in memberships.get(vg["id"], []):
            if link["member_id"]:
                member = (link["member_id"], link["email"], link["member_status"])
                if member not in member_dicts:
                    member_dicts[member] = dict(zip(("id", "email", "status"), member))
                target["members"][link["member_id"]] = member_dicts[member]
    if only and not granted and not skipped:
        raise VgmigrateError(f"no virtual group in scan {data['scan']['id']} matches --only {', '.join(options.only)}; "
                             "`vgmigrate inventory` lists their names and roles")
    return targets, skipped, granted


class _Draft:
    """What planning the target groups one by one reads (the scan, the options, the IdP) and
    fills in (groups, steps, conflicts, expected state, findings)."""

    def __init__(self, data, options, own_groups, idp):
        self.options, self.own_groups, self.idp = options, own_groups, idp
        self.account_id = data["scan"]["account_id"]
        self.pg_names = {pg["id"]: pg["name"] for pg in data["permission_groups"]}
        self.existing = {iam.name_key(g["name"]): g for g in data["user_groups"]}
        for gid, own in own_groups.items():
            self.existing.setdefault(iam.name_key(own["name"]), {"id": gid, "name": own["name"], "policies": [], "raw": {}})
        self.group_members = {}
        for link in data.get("user_group_members") or []:
            self.group_members.setdefault(link["user_group_id"], []).append({"id": link["member_id"], "email": link["email"]})
        self.rg = iam.choose_account_wide(rg for rg in data["resource_groups"] if rg.get("account_wide"))  # the scan decided which are
        self.rg_ref = self.rg["id"] if self.rg else "$rg"
        self.groups, self.conflicts, self.findings = [], [], []
        self.steps, self.creates = [], []  # idp mode: every group is created (and scoped) before any is synced
        self.expected = {
            "absent_names": [],
            "adopted": {},
            "resource_group": {"id": self.rg["id"]} if self.rg else {"absent_scope_key": iam.account_scope_key(self.account_id)},
        }
        self.taken = set(self.existing)
        if options.mode == "idp":  # the new name must be free in the IdP too
            self.taken |= {iam.name_key(n) for n in idp["group_names"]}
            self.scoped = idp["scope"] == "listed"  # an empty group_filters syncs every group: leave it so
            provider = idp["provider"]
            self.expected.update(idp_absent_names=[], idp_provider={"pk": provider["pk"], "group_filters": provider.get("group_filters")})

    def ordered_steps(self):
        if self.options.mode != "idp":
            return self.steps
        scope = [ScopeIdpGroups.build(self.idp["provider"], self.creates)] if self.scoped and self.creates else []
        return self.creates + scope + self.steps


def _plan_api_group(d, sid, target):
    """API mode: create the User Group with its policy and members, adopt the existing one, add
    the members an earlier run's group lacks, or report the name taken. Returns the plan group."""
    members = sorted(target["members"].values(), key=lambda m: m["id"])
    member_ids = [m["id"] for m in members]
    pg_id = target["permission_group"]["id"]
    policy = iam.allow_policy(pg_id, d.rg_ref)
    group = {
        "step": sid,
        "name": target["name"],
        "permission_group": target["permission_group"],
        "virtual_groups": target["virtual_groups"],
        "members": members,
    }
    on_existing = d.options.on_existing
    own_id = _own_group_for(target["name"], pg_id, d.own_groups)
    current = None if own_id else d.existing.get(iam.name_key(target["name"]))
    if own_id:
        own = d.own_groups[own_id]
        missing = [m for m in member_ids if m not in own["members"]]
        # Who is already in it came there under earlier approved plans.
        earlier = [{"id": m, "email": None} for m in sorted(own["members"])]
        group.update(action="update" if missing else "none", existing_id=own_id, name=own["name"], existing_members=earlier)
        if missing:
            d.steps.append(AddMembers.build(sid, group["name"], own_id, missing, after=[]))
    elif current and (on_existing == "fail" or (on_existing == "adopt" and _not_adoptable(current, pg_id, d.pg_names))):
        prior_members = d.group_members.get(current["id"], [])
        d.conflicts.append({"name": target["name"], "existing_id": current["id"], "members": len(prior_members),
                            "scim_managed": bool(current.get("scim_managed")),
                            "policies": iam.adoption_blockers(current["policies"], pg_id, d.pg_names.get)})
        group.update(action="conflict", existing_id=current["id"])
    elif current and on_existing == "adopt":
        prior = iam.write_policies(current["policies"])
        prior_members = sorted(d.group_members.get(current["id"], []), key=lambda m: m["id"])
        # The group keeps its own name ("dns" may be adopted for "DNS").
        group.update(action="adopt", existing_id=current["id"], existing_members=prior_members, name=current["name"])
        d.expected["adopted"][current["id"]] = {"name": current["name"], "policies": prior, "members": [m["id"] for m in prior_members]}
        after = [] if d.rg else ["rg"]
        if not iam.grants(current["policies"], pg_id, {d.rg["id"]} if d.rg else set()):
            # The update schema requires an id on every policy, and a new one has none yet: it
            # gets an id no policy has, which Cloudflare may replace with its own (README).
            new_policy = {"id": _proposed_policy_id(d.account_id, current["id"], pg_id), **policy}
            # Everyone already in the group gains the role with the new policy: the plan says who.
            group["gains"] = [m for m in prior_members if m["id"] not in target["members"]]
            d.steps.append(AdoptUserGroup.build(sid, current["name"], current["id"], prior, new_policy, after))
            after = [sid]
        d.steps.append(AddMembers.build(sid, current["name"], current["id"], member_ids, after=after))
    else:
        name = target["name"]
        if current:  # --on-existing suffix
            name = _free_name(name, d.taken)
            group.update(requested_name=target["name"], name=name)
        d.taken.add(iam.name_key(name))
        group["action"] = "create"
        d.expected["absent_names"].append(name)
        d.steps.append(CreateUserGroup.build(sid, name, policy, after=[] if d.rg else ["rg"]))
        if member_ids:
            d.steps.append(AddMembers.build(sid, name, f"${sid}", member_ids, after=[sid]))
    return group


def _plan_idp_group(d, sid, target):
    """`--mode idp`: a new IdP group with the members copied, synced to Cloudflare, then the
    policy attached there. The new name must be free on both sides: a push of a name Cloudflare
    already has would take that group over and replace its members. Returns the plan group."""
    idp = d.idp
    pg_id = target["permission_group"]["id"]
    members, missing = [], []
    for m in sorted(target["members"].values(), key=lambda m: m["id"]):
        (members if iam.email_key(m["email"]) in idp["users"] else missing).append(m)
    group = {"step": sid, "name": target["name"], "permission_group": target["permission_group"],
             "virtual_groups": target["virtual_groups"], "members": members}
    if missing:
        group["not_in_idp"] = missing
        d.findings.append(Finding(
            "warning", "member_not_in_idp", target["name"],
            f"{len(missing)} member(s) have no {idp['name']} user linked to the Cloudflare SCIM provider "
            f"({', '.join(m['email'] for m in missing[:3])}{', ...' if len(missing) > 3 else ''}): the IdP cannot put them in the new group",
            f"provision them from {idp['name']} first, or give them the role by hand; the cutover leaves them in their CF- groups",
        ))
    own_id = _own_group_for(target["name"], pg_id, d.own_groups)
    name_key = iam.name_key(target["name"])
    if own_id:
        group.update(action="none", existing_id=own_id, name=d.own_groups[own_id]["name"])
        return group
    if name_key in d.taken and d.options.on_existing != "suffix":
        where = idp["name"] if name_key in {iam.name_key(x) for x in idp["group_names"]} else "Cloudflare"
        d.conflicts.append({"name": target["name"], "existing_id": d.existing.get(name_key, {}).get("id"), "idp": where})
        group.update(action="conflict")
        return group
    name = _free_name(target["name"], d.taken) if name_key in d.taken else target["name"]
    if name != target["name"]:
        group.update(requested_name=target["name"], name=name)
    d.taken.add(iam.name_key(name))
    group["action"] = "create"
    d.expected["absent_names"].append(name)
    d.expected["idp_absent_names"].append(name)
    member_ids = [m["id"] for m in members]
    marker = {"account": d.account_id, "permission_group": pg_id}
    d.creates.append(CreateIdpGroup.build(sid, name, sorted({idp["users"][iam.email_key(m["email"])] for m in members}), marker))
    d.steps.append(SyncIdpGroup.build(sid, name, idp["provider"]["pk"], member_ids, d.scoped))
    policy = {"id": _proposed_policy_id(d.account_id, name, pg_id), **iam.allow_policy(pg_id, d.rg_ref)}
    d.steps.append(AttachIdpPolicy.build(sid, name, policy, rg_exists=bool(d.rg)))
    return group


def _idp_summary(idp):
    """What the approver needs to know of the IdP side."""
    provider = idp["provider"]
    return {"name": idp["name"], "source": idp["source"], "url": idp["url"], "version": idp["version"], "scope": idp["scope"],
            "provider": {"pk": provider["pk"], "name": provider["name"], "url": provider["url"],
                         **({"kind": provider["kind"]} if provider.get("kind") else {})}}


def _not_adoptable(group, pg_id, pg_names):
    """An IdP-managed group's members are the IdP's; a group with other policies would hand them on."""
    return group.get("scim_managed") or iam.adoption_blockers(group["policies"], pg_id, pg_names.get)


def _proposed_policy_id(*parts):
    return hashlib.sha256(":".join(parts).encode()).hexdigest()[:32]


def _conflict_finding(conflict, role):
    if conflict.get("idp"):
        message = (f"a group with this name already exists in {conflict['idp']}: pushing a second one would take the "
                   "Cloudflare group over and replace its members")
        action = "plan with --on-existing suffix (a new name beside it), or another --name-template"
    elif conflict["scim_managed"]:
        message = (f"an existing User Group (id {conflict['existing_id']}) already has this name and is managed by your IdP "
                   "over SCIM: vgmigrate cannot add members to it")
        action = "plan with --on-existing suffix (create a new group beside it), or another --name-template"
    elif conflict["policies"]:
        message = (f"an existing User Group (id {conflict['existing_id']}, {conflict['members']} member(s)) already has this name, "
                   f"and adopting it would bind the migrated members to its other policies: {'; '.join(conflict['policies'])}")
        action = "plan with --on-existing suffix (create a new group beside it), or another --name-template"
    else:
        message = f"an existing User Group (id {conflict['existing_id']}, {conflict['members']} member(s)) already has this name"
        action = (f"plan with --on-existing suffix (create a new group beside it), or adopt (take it over: its "
                  f"{conflict['members']} current member(s) would gain {role!r} on the whole account), or another --name-template")
    return Finding("error", "name_conflict", conflict["name"], message, action)


def _own_group_for(name, pg_id, own_groups):
    """The User Group an earlier run made for this target, whatever suffix it was given: one with
    the target's name, or one named `<name> (n)` that the run created for this permission group."""
    suffixed = re.compile(re.escape(iam.name_key(name)) + r" \(\d+\)")
    for gid, own in sorted(own_groups.items()):
        if iam.name_key(own["name"]) == iam.name_key(name):
            return gid
    for gid, own in sorted(own_groups.items()):
        if pg_id in own.get("permission_groups", ()) and suffixed.fullmatch(iam.name_key(own["name"])):
            return gid
    return None


def _free_name(name, taken):
    n = 2
    while iam.name_key(f"{name} ({n})") in taken:
        n += 1
    return f"{name} ({n})"


def _held_under(role, res, same_role):
    """(the name a virtual group's members hold its role under today, how it resolved, the role).
    Exact, normalised and rename-table resolutions are the same role, maybe renamed; a mapping
    file's choice is another permission group, unless it names the one the role is anyway."""
    pg = res.permission_group
    if res.method != "mapping":
        return pg["name"], res.method, role
    base = same_role(role)
    if base.status == "resolved" and base.permission_group["id"] == pg["id"]:
        return pg["name"], base.method, role
    return role, "mapping", role


def access_picture(memberships, groups, granted):
    """Before/after access per member: what they hold today through virtual groups, and what the
    planned User Groups will grant, including what the current members of an adopted group gain
    with it. Differences are what an approver must look at, and each says why:

    - moved: [role, permission group] a mapping file put in place of a role held today;
    - restored: a permission group the plan grants to a member of its virtual group who does not
      hold it in Cloudflare today (the scan's `holds`; not in `before`);
    - cannot_add: a role a virtual group lists someone for who is not an account member: they
      never had it and cannot be added (not in `before`, so not a loss);
    - renamed: [role, permission group], the same role under Cloudflare's new name (no change).
    Empty lists are left out.

    granted: virtual group id -> (name held under today, how its role resolved (None: unresolved), its role).
    """
    planned = {vg["id"]: g for g in groups for vg in g["virtual_groups"]}
    # Each member's links together, in their scan order (the first gives the row its member id),
    # so that only one member's role sets exist at a time: 100,000 rows of sets are ~60 MB.
    links = {}
    for link in memberships:
        if link["virtual_group_id"] in granted:  # else left out by --only
            links.setdefault(link["email"], []).append(link)
    gains = {}  # email (or id) -> (member id, role, group name) for current members of adopted groups
    for group in groups:
        for member in group.get("gains", []):
            gains.setdefault(member["email"] or member["id"], []).append((member["id"], group["permission_group"]["name"], group["name"]))
    lists = {}

    def shared(roles):  # equal role lists are one list: most members share a few combinations
        key = tuple(sorted(roles))
        if key not in lists:
            lists[key] = list(key)
        return lists[key]

    rows = []
    for email in sorted(links.keys() | gains.keys()):
        mine = links.pop(email, [])
        before, after, why = set(), set(), {}
        moved, restored, cannot, renamed = set(), set(), set(), set()
        for link in mine:
            held_as, method, role = granted[link["virtual_group_id"]]
            group = planned.get(link["virtual_group_id"])
            to = group["permission_group"]["name"] if group and group.get("action") != "conflict" else None
            if not link["member_id"]:
                cannot.add(held_as)
                continue
            if link.get("holds") == 0:  # scans before `holds` was recorded count as held
                if to:
                    restored.add(to)
                    after.add(to)
                continue
            before.add(held_as)
            if to:
                after.add(to)
                if method == "mapping":
                    moved.add((held_as, to))
                elif method == "rename":
                    renamed.add((role, to))
        for _, role, group_name in gains.get(email, []):
            if role not in after:
                after.add(role)
                why[role] = f"already in adopted User Group {group_name!r}"
        member_id = mine[0]["member_id"] if mine else gains[email][0][0]
        row = {"email": email, "member_id": member_id, "before": shared(before), "after": shared(after), "why": why,
               "lost": shared(before - after), "gained": shared(after - before)}
        extra = {"moved": sorted([a, b] for a, b in moved if a not in after and b not in before),
                 "restored": sorted(restored - before), "cannot_add": sorted(cannot - before - after), "renamed": sorted(map(list, renamed))}
        rows.append({**row, **{k: v for k, v in extra.items() if v}})
    return rows
