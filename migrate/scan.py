"""The scan workflow: read the account (read-only), analyse it, record it as one inventory scan."""

import hashlib

from . import sources
from .errors import CloudflareError
from .findings import Finding, analyse, member_fields, sort_findings
from .iam import email_key, is_account_wide, scope_of
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
    # Every list's first page at once; each list's other pages follow concurrently as it is read.
    listings = {"pgs": client.permission_groups().start(), "members": client.members().start(),
                "rgs": client._submit(client.resource_groups), "ugs": client.user_groups().start()}
    if source != "file":
        listings.update(scim_groups=client.scim_groups().start(), scim_users=client.scim_users().start())
    pgs = _collect(listings["pgs"], "permission groups", progress)
    with inventory.scan_writer() as writer:
        fingerprint = Fingerprint()

        def stage(table, rows):
            writer.insert(table, fingerprint.rows(table, rows))

        # Tables are staged in name order, the order the fingerprint reads them.
        stage("accounts", [_account_row(account)])
        members = []
        stage("members", _member_rows(listings["members"], members, client.account_id, progress))
        progress("resource groups")
        rgs = listings["rgs"].result()
        ugs = _collect(listings["ugs"], "user groups", progress)
        if source == "file":
            vgs = sources.from_file(file)
            scim_ids = _scim_group_ids(client, progress) if ugs else set()
        else:
            scim_groups = _collect(listings["scim_groups"], "virtual groups", progress)
            scim_ids = {g["id"] for g in scim_groups}
            vgs = sources.from_scim(scim_groups, listings["scim_users"], progress=lambda: progress("users"))

        own_ids = inventory.own_user_group_ids()
        vg_rows, vgm_rows, findings = analyse(client.account_id, vgs, pgs, members, ugs, mapping, own_group_ids=own_ids)
        if scim_ids is None:
            findings = sort_findings(findings + [Finding(
                "warning", "scim_unreadable", client.account_id,
                "the token cannot read SCIM groups, so which User Groups your IdP manages is unknown",
                "adopt no group you are not sure about, or scan with a token that has SCIM Provisioning Read")])
        stage("permission_groups", map(_permission_group_row, pgs))
        stage("resource_groups", (_resource_group_row(rg, client.account_id) for rg in rgs))
        # One listing per group a plan may adopt: adopting grants the role to everyone in it.
        stage("user_group_members", _adoptable_members(client, [g for g in ugs if g["id"] not in own_ids], progress))
        stage("user_groups", (_user_group_row(g, scim_ids) for g in ugs))
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
            "mapping": dumps(mapping or {}),  # its content: `plan` resolves roles the same way
        }
        scan_id = writer.save(scan, findings)
    return scan_id, counts, findings


def _member_rows(listing, kept, account_id, progress):
    """Inventory rows of the listed members; appends each member's `member_fields` to `kept`."""
    for m in listing:
        kept.append(member_fields(m, account_id))
        progress("members")
        user = m.get("user") or {}
        yield {
            "id": m["id"],
            "email": email_key(m.get("email") or user.get("email")),
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


def _resource_group_row(rg, account_id):
    scope = scope_of(rg)
    return {
        "id": rg["id"],
        "name": rg.get("name"),
        "scope_key": scope.get("key"),
        "objects": dumps([o.get("key") for o in scope.get("objects") or []]),
        "account_wide": int(is_account_wide(rg, account_id)),
        "raw": dumps(rg),
    }


def _user_group_row(g, scim_ids):
    """scim_ids: every SCIM group id, or None when the source did not read SCIM (unknown)."""
    managed = None if scim_ids is None else int(g["id"] in scim_ids)
    return {"id": g["id"], "name": g["name"], "policies": dumps(g.get("policies") or []), "scim_managed": managed, "raw": dumps(g)}


def _scim_group_ids(client, progress):
    """Every SCIM group id (a User Group with one is managed by the IdP), or None if unreadable."""
    try:
        return {g["id"] for g in _collect(client.scim_groups(), "SCIM groups", progress)}
    except CloudflareError as err:
        if err.status in (401, 403, 404):
            return None
        raise


def _adoptable_members(client, groups, progress):
    listings = [(group, client.user_group_members(group["id"]).start()) for group in groups]  # read concurrently
    for group, listing in listings:
        for m in listing:
            progress("user group members")
            yield {"user_group_id": group["id"], "member_id": m["id"], "email": email_key(m.get("email")), "status": m.get("status")}


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

