"""Inventory -> Plan. Pure: no network, no writes.

A plan names every object it will touch, what it expects to find there, and the ordered steps
(each with its inverse) that turn virtual groups into User Groups. Steps refer to objects created
by earlier steps as "$<step id>"; the executor fills the real ids in from its journal.
"""

import string
from dataclasses import dataclass, field

from .errors import VgmigrateError
from .findings import sort_findings, Finding
from .roles import normalise, role_resolver

ACCOUNT_SCOPE_PREFIX = "com.cloudflare.api.account."
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


def account_scope_key(account_id):
    return ACCOUNT_SCOPE_PREFIX + account_id


def find_account_resource_group(resource_groups, account_id):
    """The resource group covering the whole account (scope key of the account, objects ["*"])."""
    key = account_scope_key(account_id)
    for rg in resource_groups:
        scope = rg.get("scope") or (rg.get("raw") or {}).get("scope") or {}
        objects = [o.get("key") for o in scope.get("objects") or []]
        if scope.get("key") == key and objects == ["*"]:
            return rg
    return None


def build_plan(data, options, own_groups=None):
    """Plan the migration of one scan.

    data: inventory.load_scan() output. own_groups: {user group id: {"name", "members"}} for User
    Groups earlier runs of this tool created, adopted or filled (from the journal), so that
    re-planning after an apply shows nothing to do, even before the next scan. Returns a plan
    dict without plan_id (planfile adds it).
    """
    check_template(options.name_template)
    own_groups = own_groups or {}
    account_id = data["scan"]["account_id"]
    resolve = role_resolver([pg["raw"] for pg in data["permission_groups"]], options.mapping)
    memberships = {}
    for link in data["virtual_group_members"]:
        memberships.setdefault(link["virtual_group_id"], []).append(link)

    targets, skipped, findings = {}, [], []
    granted = {}  # virtual group id -> what it granted, as a permission group name when resolved
    for vg in data["virtual_groups"]:
        if options.only and vg["name"] not in options.only and vg["role"] not in options.only:
            continue
        if vg["account_id"] != account_id:
            skipped.append({"virtual_group": vg["name"], "reason": "names another account"})
            continue
        granted[vg["id"]] = vg["role"]
        res = resolve(vg["role"])
        if res.status != "resolved":
            skipped.append({"virtual_group": vg["name"], "reason": res.message})
            continue
        pg = res.permission_group
        granted[vg["id"]] = pg["name"]
        name = options.name_template.format(role=pg["name"], vg_role=vg["role"], account=account_id).strip()
        if name.upper().startswith("CF"):
            raise VgmigrateError(
                f"target name {name!r} starts with CF, which Cloudflare reserves; choose another --name-template"
            )
        target = targets.setdefault(
            name,
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
                target["members"][link["member_id"]] = {"id": link["member_id"], "email": link["email"], "status": link["member_status"]}

    existing = {normalise(g["name"]): g for g in data["user_groups"]}
    for gid, own in own_groups.items():
        existing.setdefault(normalise(own["name"]), {"id": gid, "name": own["name"], "policies": [], "raw": {}})
    taken = set(existing)
    rg = find_account_resource_group(data["resource_groups"], account_id)
    rg_ref = rg["id"] if rg else "$rg"
    steps, groups, conflicts = [], [], []
    expected = {
        "absent_names": [],
        "adopted": {},
        "resource_group": {"id": rg["id"], "scope_key": account_scope_key(account_id)} if rg else {"absent_scope_key": account_scope_key(account_id)},
    }
    for n, target in enumerate(sorted(targets.values(), key=lambda t: t["name"]), 1):
        sid = f"g{n:03d}"
        members = sorted(target["members"].values(), key=lambda m: m["id"])
        member_ids = [m["id"] for m in members]
        policy = {"access": "allow", "permission_groups": [{"id": target["permission_group"]["id"]}], "resource_groups": [{"id": rg_ref}]}
        group = {
            "step": sid,
            "name": target["name"],
            "permission_group": target["permission_group"],
            "virtual_groups": target["virtual_groups"],
            "members": members,
        }
        current = existing.get(normalise(target["name"]))
        if current and current["id"] in own_groups:
            missing = [m for m in member_ids if m not in own_groups[current["id"]]["members"]]
            group.update(action="update" if missing else "none", existing_id=current["id"])
            if missing:
                steps.append(_add_members(f"{sid}.members", target["name"], current["id"], missing, after=[]))
        elif current and options.on_existing == "fail":
            conflicts.append({"name": target["name"], "existing_id": current["id"]})
            group.update(action="conflict", existing_id=current["id"])
        elif current and options.on_existing == "adopt":
            group.update(action="adopt", existing_id=current["id"])
            prior = write_policies(current["policies"])
            expected["adopted"][current["id"]] = {"name": current["name"], "policies": prior}
            after = [] if rg else ["rg"]
            if not _grants(current["policies"], target["permission_group"]["id"], rg["id"] if rg else None):
                steps.append(
                    {
                        "id": sid,
                        "kind": "adopt_user_group",
                        "target": target["name"],
                        "after": after,
                        "request": {"id": current["id"], "policies": prior + [policy]},
                        "inverse": {"kind": "restore_policies", "id": current["id"], "policies": prior},
                    }
                )
                after = [sid]
            steps.append(_add_members(f"{sid}.members", target["name"], current["id"], member_ids, after=after))
        else:
            name = target["name"]
            if current:  # --on-existing suffix
                name = _free_name(name, taken)
                group.update(requested_name=target["name"], name=name)
            taken.add(normalise(name))
            group["action"] = "create"
            expected["absent_names"].append(name)
            steps.append(
                {
                    "id": sid,
                    "kind": "create_user_group",
                    "target": name,
                    "after": [] if rg else ["rg"],
                    "request": {"name": name, "policies": [policy]},
                    "inverse": {"kind": "delete_user_group"},
                }
            )
            if member_ids:
                steps.append(_add_members(f"{sid}.members", name, f"${sid}", member_ids, after=[sid]))
        groups.append(group)

    if not rg and any(s["kind"] in ("create_user_group", "adopt_user_group") for s in steps):
        steps.insert(
            0,
            {
                "id": "rg",
                "kind": "create_resource_group",
                "target": account_scope_key(account_id),
                "after": [],
                "request": {"name": account_scope_key(account_id), "scope": {"key": account_scope_key(account_id), "objects": [{"key": "*"}]}},
                "inverse": {"kind": "delete_resource_group"},
            },
        )
    for c in conflicts:
        findings.append(Finding("error", "name_conflict", c["name"], f"an existing User Group (id {c['existing_id']}) already has this name",
                                "plan with --on-existing adopt (take it over) or suffix (create a new name), or --name-template"))

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
        "resource_group": {"id": rg["id"], "name": rg.get("name")} if rg else {"create": account_scope_key(account_id)},
        "expected": expected,
        "groups": groups,
        "skipped": skipped,
        "conflicts": conflicts,
        "findings": [f.as_row() for f in sort_findings(scan_findings + findings)],
        "access": access_picture(data["virtual_group_members"], groups, granted),
        "steps": steps,
    }


def _add_members(step_id, target, group_ref, member_ids, after):
    return {
        "id": step_id,
        "kind": "add_members",
        "target": target,
        "after": after,
        "request": {"group": group_ref, "members": member_ids},
        # Filled in at apply time with the membership found just before the add.
        "inverse": {"kind": "restore_members"},
    }


def write_policies(policies):
    """Policies as read -> the write shape PUT accepts, keeping ids so the set is restored exactly."""
    return [
        {
            "id": p.get("id"),
            "access": p.get("access", "allow"),
            "permission_groups": [{"id": pg["id"]} for pg in p.get("permission_groups") or []],
            "resource_groups": [{"id": rg["id"]} for rg in p.get("resource_groups") or []],
        }
        for p in policies or []
    ]


def _grants(policies, pg_id, rg_id):
    return any(
        p.get("access", "allow") == "allow"
        and any(pg["id"] == pg_id for pg in p.get("permission_groups") or [])
        and any(rg["id"] == rg_id for rg in p.get("resource_groups") or [])
        for p in policies or []
    )


def _free_name(name, taken):
    n = 2
    while normalise(f"{name} ({n})") in taken:
        n += 1
    return f"{name} ({n})"


def access_picture(memberships, groups, granted):
    """Before/after access per member: which roles virtual groups granted, and which the planned
    User Groups will grant. Differences are what an approver must look at."""
    planned = {vg["id"]: g for g in groups for vg in g["virtual_groups"]}
    rows = {}
    for link in memberships:
        if link["virtual_group_id"] not in granted:  # left out by --only
            continue
        row = rows.setdefault(link["email"], {"email": link["email"], "member_id": link["member_id"], "before": set(), "after": set()})
        row["before"].add(granted[link["virtual_group_id"]])
        group = planned.get(link["virtual_group_id"])
        if group and link["member_id"] and group.get("action") != "conflict":
            row["after"].add(group["permission_group"]["name"])
    return [
        {**r, "before": sorted(r["before"]), "after": sorted(r["after"]), "lost": sorted(r["before"] - r["after"])}
        for r in sorted(rows.values(), key=lambda r: r["email"])
    ]
