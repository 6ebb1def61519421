"""The scan workflow: read the account (read-only), analyse it, record it as one inventory scan."""

import hashlib

from . import sources
from .findings import analyse, member_fields
from .inventory import dumps, utcnow
from .roles import is_account_scoped, is_deprecated

def run_scan(client, inventory, *, source="cloudflare", file=None, mapping=None, progress=lambda phase, n=1: None):
    """Scan the account and record it. Returns (scan_id, counts, findings). Writes nothing on failure.

    Rows are staged as they are read (account members, the largest listing, as they arrive) and
    only the fields the analysis needs stay in memory.
    """
    started = utcnow()
    progress("token")
    token = client.verify_token()
    progress("account")
    account = client.account()
    pgs = _collect(client.permission_groups(), "permission groups", progress)
    with inventory.scan_writer() as writer:
        fingerprint = Fingerprint()

        def stage(table, rows):
            writer.insert(table, fingerprint.rows(table, rows))

        # Tables are staged in name order, the order the fingerprint reads them.
        stage("accounts", [_account_row(account)])
        members = []
        stage("members", _member_rows(client.members(), members, progress))
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
        stage("permission_groups", map(_permission_group_row, pgs))
        stage("resource_groups", map(_resource_group_row, rgs))
        stage("user_groups", map(_user_group_row, ugs))
        stage("virtual_group_members", vgm_rows)
        stage("virtual_groups", ({**r, "variants": dumps(r["variants"]), "raw": dumps(r["raw"])} for r in vg_rows))
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
            "fingerprint": fingerprint.hexdigest(),
        }
        scan_id = writer.save(scan, findings)
    return scan_id, counts, findings


def _member_rows(listing, kept, progress):
    """Inventory rows of the listed members; appends each member's `member_fields` to `kept`."""
    for m in listing:
        kept.append(member_fields(m))
        progress("members")
        user = m.get("user") or {}
        yield {
            "id": m["id"],
            "email": (m.get("email") or user.get("email") or "").lower(),
            "status": m.get("status"),
            "user_id": user.get("id"),
            "roles": dumps(sorted(r.get("name", "") for r in m.get("roles") or [])),
            "raw": dumps(m),
        }


def _account_row(account):
    return {"id": account["id"], "name": account.get("name"), "type": account.get("type"), "raw": dumps(account)}


def _permission_group_row(pg):
    return {
        "id": pg["id"],
        "name": pg.get("name"),
        "scopes": dumps((pg.get("meta") or {}).get("scopes")),
        "deprecated": int(is_deprecated(pg)),
        "raw": dumps(pg),
    }


def _resource_group_row(rg):
    scope = rg.get("scope") or {}
    return {
        "id": rg["id"],
        "name": rg.get("name"),
        "scope_key": scope.get("key"),
        "objects": dumps([o.get("key") for o in scope.get("objects") or []]),
        "raw": dumps(rg),
    }


def _user_group_row(g):
    return {"id": g["id"], "name": g["name"], "policies": dumps(g.get("policies") or []), "raw": dumps(g)}


def _collect(items, phase, progress):
    out = []
    for item in items:
        out.append(item)
        progress(phase)
    return out


class Fingerprint:
    """sha256 over the canonical rows of a scan, table by table in name order: equal inventories
    have equal fingerprints."""

    def __init__(self):
        self._digest = hashlib.sha256()
        self._table = ""

    def rows(self, table, rows):
        """Yields `rows` unchanged while adding them to the digest."""
        if table < self._table:
            raise ValueError(f"fingerprint: table {table!r} after {self._table!r}; tables must come in name order")
        self._table = table
        prefix = table.encode()
        for row in rows:
            # The raw API JSON is already text: hash it as it is (length-prefixed) rather than
            # JSON-escaping it again inside the row.
            raw = row.get("raw") or ""
            self._digest.update(prefix)
            self._digest.update(dumps({k: v for k, v in row.items() if k != "raw"}).encode())
            self._digest.update(f"{len(raw)}:".encode())
            self._digest.update(raw.encode())
            yield row

    def hexdigest(self):
        return self._digest.hexdigest()

