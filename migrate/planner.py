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
        raise VgmigrateError("--mode idp needs Authentik: set AUTHENTIK_URL and AUTHENTIK_TOKEN")
    if options.mode == "idp" and options.on_existing == "adopt":
        raise VgmigrateError("--mode idp cannot adopt an existing group (its members would become the IdP's); "
                             "use --on-existing suffix or another --name-template")
    own_groups = own_groups or {}
    account_id = data["scan"]["account_id"]
    resolve = role_resolver([pg["raw"] for pg in data["permission_groups"]], options.mapping)
    # Without the mapping file: whether a mapped role is another permission group than the one held.
    same_role = role_resolver([pg["raw"] for pg in data["permission_groups"]]) if options.mapping else None
    memberships = {}
    for link in data["virtual_group_members"]:
        memberships.setdefault(link["virtual_group_id"], []).append(link)

    only = {iam.name_key(o) for o in options.only}
    targets, skipped, findings = {}, [], []
    member_dicts = {}  # one dict per distinct member, however many groups list it
    granted = {}  # virtual group id -> (the name its members hold it under today, how its role resolved, its role)
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

    pg_names = {pg["id"]: pg["name"] for pg in data["permission_groups"]}
    existing = {iam.name_key(g["name"]): g for g in data["user_groups"]}
    for gid, own in own_groups.items():
        existing.setdefault(iam.name_key(own["name"]), {"id": gid, "name": own["name"], "policies": [], "raw": {}})
    group_members = {}
    for link in data.get("user_group_members") or []:
        group_members.setdefault(link["user_group_id"], []).append({"id": link["member_id"], "email": link["email"]})
    taken = set(existing)
    rg = iam.choose_account_wide(rg for rg in data["resource_groups"] if rg.get("account_wide"))  # the scan decided which are
    rg_ref = rg["id"] if rg else "$rg"
    steps, groups, conflicts = [], [], []
    expected = {
        "absent_names": [],
        "adopted": {},
        "resource_group": {"id": rg["id"]} if rg else {"absent_scope_key": iam.account_scope_key(account_id)},
    }
    ordered = sorted(targets.values(), key=lambda t: t["name"])
    if options.mode == "idp":
        _plan_idp_groups(ordered, idp, options.on_existing, account_id, rg, own_groups, existing, steps, groups, conflicts, expected, findings)
    else:
        for n, target in enumerate(ordered, 1):
            sid = f"g{n:03d}"
            members = sorted(target["members"].values(), key=lambda m: m["id"])
            member_ids = [m["id"] for m in members]
            pg_id = target["permission_group"]["id"]
            policy = iam.allow_policy(pg_id, rg_ref)
            group = {
                "step": sid,
                "name": target["name"],
                "permission_group": target["permission_group"],
                "virtual_groups": target["virtual_groups"],
                "members": members,
            }
            own_id = _own_group_for(target["name"], pg_id, own_groups)
            current = None if own_id else existing.get(iam.name_key(target["name"]))
            if own_id:
                missing = [m for m in member_ids if m not in own_groups[own_id]["members"]]
                # Who is already in it came there under earlier approved plans.
                earlier = [{"id": m, "email": None} for m in sorted(own_groups[own_id]["members"])]
                group.update(action="update" if missing else "none", existing_id=own_id, name=own_groups[own_id]["name"], existing_members=earlier)
                if missing:
                    steps.append(AddMembers.build(sid, group["name"], own_id, missing, after=[]))
            elif current and (options.on_existing == "fail" or (options.on_existing == "adopt" and _not_adoptable(current, pg_id, pg_names))):
                prior_members = group_members.get(current["id"], [])
                conflicts.append({"name": target["name"], "existing_id": current["id"], "members": len(prior_members),
                                  "scim_managed": bool(current.get("scim_managed")),
                                  "policies": iam.adoption_blockers(current["policies"], pg_id, pg_names.get)})
                group.update(action="conflict", existing_id=current["id"])
            elif current and options.on_existing == "adopt":
                prior = iam.write_policies(current["policies"])
                prior_members = sorted(group_members.get(current["id"], []), key=lambda m: m["id"])
                # The group keeps its own name ("dns" may be adopted for "DNS").
                group.update(action="adopt", existing_id=current["id"], existing_members=prior_members, name=current["name"])
                expected["adopted"][current["id"]] = {"name": current["name"], "policies": prior, "members": [m["id"] for m in prior_members]}
                after = [] if rg else ["rg"]
                if not iam.grants(current["policies"], pg_id, {rg["id"]} if rg else set()):
                    # The update schema requires an id on every policy, and a new one has none yet: it
                    # gets an id no policy has, which Cloudflare may replace with its own (README).
                    new_policy = {"id": _proposed_policy_id(account_id, current["id"], pg_id), **policy}
                    # Everyone already in the group gains the role with the new policy: the plan says who.
                    group["gains"] = [m for m in prior_members if m["id"] not in target["members"]]
                    steps.append(AdoptUserGroup.build(sid, current["name"], current["id"], prior, new_policy, after))
                    after = [sid]
                steps.append(AddMembers.build(sid, current["name"], current["id"], member_ids, after=after))
            else:
                name = target["name"]
                if current:  # --on-existing suffix
                    name = _free_name(name, taken)
                    group.update(requested_name=target["name"], name=name)
                taken.add(iam.name_key(name))
                group["action"] = "create"
                expected["absent_names"].append(name)
                steps.append(CreateUserGroup.build(sid, name, policy, after=[] if rg else ["rg"]))
                if member_ids:
                    steps.append(AddMembers.build(sid, name, f"${sid}", member_ids, after=[sid]))
            groups.append(group)

    if not rg and creates_policy(steps):
        steps.insert(0, CreateResourceGroup.build(account_id))
    for c in conflicts:
        findings.append(_conflict_finding(c, targets[iam.name_key(c["name"])]["permission_group"]["name"]))

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
        "expected": expected,
        "groups": groups,
        "skipped": skipped,
        "conflicts": conflicts,
        "findings": [f.as_row() for f in sort_findings(scan_findings + findings)],
        "access": access_picture(data["virtual_group_members"], groups, granted),
        "steps": steps,
    }


def _plan_idp_groups(targets, idp, on_existing, account_id, rg, own_groups, existing, steps, groups, conflicts, expected, findings):
    """`--mode idp`: per target a new Authentik group with the members copied, synced to
    Cloudflare, then the policy attached there. The new name must be free on both sides: a push
    of a name Cloudflare already has would take that group over and replace its members."""
    provider = idp["provider"]
    taken = set(existing) | {iam.name_key(n) for n in idp["group_names"]}
    scoped = idp["scope"] == "listed"  # an empty group_filters syncs every group: leave it so
    expected.update(idp_absent_names=[], idp_provider={"pk": provider["pk"], "group_filters": provider.get("group_filters")})
    rg_ref = rg["id"] if rg else "$rg"
    creates, then = [], []  # every group is created (and scoped) before any is synced
    for n, target in enumerate(targets, 1):
        sid = f"g{n:03d}"
        pg_id = target["permission_group"]["id"]
        members, missing = [], []
        for m in sorted(target["members"].values(), key=lambda m: m["id"]):
            (members if iam.email_key(m["email"]) in idp["users"] else missing).append(m)
        group = {"step": sid, "name": target["name"], "permission_group": target["permission_group"],
                 "virtual_groups": target["virtual_groups"], "members": members}
        if missing:
            group["not_in_idp"] = missing
            findings.append(Finding(
                "warning", "member_not_in_idp", target["name"],
                f"{len(missing)} member(s) have no Authentik user linked to the Cloudflare SCIM provider "
                f"({', '.join(m['email'] for m in missing[:3])}{', ...' if len(missing) > 3 else ''}): the IdP cannot put them in the new group",
                "provision them from Authentik first, or give them the role by hand; the cutover leaves them in their CF- groups",
            ))
        own_id = _own_group_for(target["name"], pg_id, own_groups)
        name_key = iam.name_key(target["name"])
        if own_id:
            group.update(action="none", existing_id=own_id, name=own_groups[own_id]["name"])
            groups.append(group)
            continue
        if name_key in taken and on_existing != "suffix":
            where = "Authentik" if name_key in {iam.name_key(x) for x in idp["group_names"]} else "Cloudflare"
            conflicts.append({"name": target["name"], "existing_id": existing.get(name_key, {}).get("id"), "idp": where})
            group.update(action="conflict")
            groups.append(group)
            continue
        name = _free_name(target["name"], taken) if name_key in taken else target["name"]
        if name != target["name"]:
            group.update(requested_name=target["name"], name=name)
        taken.add(iam.name_key(name))
        group["action"] = "create"
        expected["absent_names"].append(name)
        expected["idp_absent_names"].append(name)
        member_ids = [m["id"] for m in members]
        marker = {"account": account_id, "permission_group": pg_id}
        creates.append(CreateIdpGroup.build(sid, name, sorted({idp["users"][iam.email_key(m["email"])] for m in members}), marker))
        then.append(SyncIdpGroup.build(sid, name, provider["pk"], member_ids, scoped))
        policy = {"id": _proposed_policy_id(account_id, name, pg_id), **iam.allow_policy(pg_id, rg_ref)}
        then.append(AttachIdpPolicy.build(sid, name, policy, rg_exists=bool(rg)))
        groups.append(group)
    steps.extend(creates)
    if scoped and creates:
        steps.append(ScopeIdpGroups.build(provider, creates))
    steps.extend(then)


def _idp_summary(idp):
    """What the approver needs to know of the Authentik side."""
    provider = idp["provider"]
    return {"url": idp["url"], "version": idp["version"], "scope": idp["scope"],
            "provider": {"pk": provider["pk"], "name": provider["name"], "url": provider["url"]}}


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
