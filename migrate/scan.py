"""The scan workflow: read the account (read-only), analyse it, record it as one inventory scan."""

import hashlib

from . import sources
from .findings import analyse
from .inventory import dumps, utcnow
from .roles import is_account_scoped, is_deprecated

PHASES = ("token", "account", "permission groups", "members", "resource groups", "user groups", "virtual groups")


def run_scan(client, inventory, *, source="cloudflare", file=None, mapping=None, progress=lambda phase, n=1: None):
    """Scan the account and record it. Returns (scan_id, counts, findings). Writes nothing on failure."""
    started = utcnow()
    progress("token")
    token = client.verify_token()
    progress("account")
    account = client.account()
    pgs = _collect(client.permission_groups(), "permission groups", progress)
    members = _collect(client.members(), "members", progress)
    progress("resource groups")
    rgs = client.resource_groups()
    ugs = _collect(client.user_groups(), "user groups", progress)
    if source == "file":
        vgs = sources.from_file(file)
    else:
        scim_groups = _collect(client.scim_groups(), "virtual groups", progress)
        vgs = sources.from_scim(scim_groups, client.scim_users(), progress=lambda: progress("users"))

    vg_rows, vgm_rows, findings = analyse(
        client.account_id, vgs, pgs, members, ugs, mapping, own_group_ids=inventory.own_user_group_ids()
    )
    tables = {
        "accounts": [{"id": account["id"], "name": account.get("name"), "type": account.get("type"), "raw": dumps(account)}],
        "permission_groups": [
            {
                "id": pg["id"],
                "name": pg.get("name"),
                "scopes": dumps((pg.get("meta") or {}).get("scopes")),
                "deprecated": int(is_deprecated(pg)),
                "raw": dumps(pg),
            }
            for pg in pgs
        ],
        "resource_groups": [
            {
                "id": rg["id"],
                "name": rg.get("name"),
                "scope_key": (rg.get("scope") or {}).get("key"),
                "objects": dumps([o.get("key") for o in (rg.get("scope") or {}).get("objects") or []]),
                "raw": dumps(rg),
            }
            for rg in rgs
        ],
        "members": [
            {
                "id": m["id"],
                "email": (m.get("email") or (m.get("user") or {}).get("email") or "").lower(),
                "status": m.get("status"),
                "user_id": (m.get("user") or {}).get("id"),
                "roles": dumps(sorted(r.get("name", "") for r in m.get("roles") or [])),
                "raw": dumps(m),
            }
            for m in members
        ],
        "user_groups": [{"id": g["id"], "name": g["name"], "policies": dumps(g.get("policies") or []), "raw": dumps(g)} for g in ugs],
        "virtual_groups": [{**r, "variants": dumps(r["variants"]), "raw": dumps(r["raw"])} for r in vg_rows],
        "virtual_group_members": vgm_rows,
    }
    counts = {
        "virtual_groups": len(vg_rows),
        "resolved": sum(r.get("resolution") == "resolved" for r in vg_rows),
        "memberships": len(vgm_rows),
        "members": len(members),
        "permission_groups": len(pgs),
        "account_scoped_permission_groups": sum(is_account_scoped(pg) for pg in pgs),
        "user_groups": len(ugs),
        "resource_groups": len(rgs),
    }
    scan = {
        "account_id": client.account_id,
        "account_name": account.get("name"),
        "source": source if source != "file" else f"file:{file}",
        "token_kind": token.get("kind"),
        "started_at": started,
        "finished_at": utcnow(),
        "counts": dumps(counts),
        "fingerprint": fingerprint(tables),
    }
    scan_id = inventory.save_scan(scan, tables, findings)
    return scan_id, counts, findings


def _collect(items, phase, progress):
    out = []
    for item in items:
        out.append(item)
        progress(phase)
    return out


def fingerprint(tables):
    """sha256 over the canonical rows of a scan: equal inventories have equal fingerprints."""
    digest = hashlib.sha256()
    for name in sorted(tables):
        for row in tables[name]:
            digest.update(name.encode())
            digest.update(dumps(row).encode())
    return digest.hexdigest()
