"""The scan workflow: read the account (read-only), analyse it, record it as one inventory scan."""

import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from . import sources
from .cloudflare import Pages, in_background
from .collector import cycle_collection_paused
from .errors import CloudflareError, UsageProblem
from .idp.base import IDPS
from .findings import Finding, analyse, member_fields, sort_findings
from .iam import email_key, is_account_wide, scope_of
from .codec import dumps, utcnow
from .inventory import member_raw
from .names import quoted
from .roles import is_account_scoped, is_deprecated


@cycle_collection_paused()
def run_scan(client, inventory, *, source="cloudflare", file=None, mapping=None, progress=lambda phase, n=1: None, idp=None):
    """Scan the account and record it. Returns (scan_id, counts, findings). Writes nothing on failure.

    source: "cloudflare" (its SCIM view), "file" (an IdP export) or "authentik" (the `idp`
    AuthentikClient's CF- groups, cross-checked with the SCIM view when the token can read it).

    Rows are staged as they are read (account members, the largest listing, as they arrive) and
    only the fields the analysis needs stay in memory.
    """
    reader = source_reader(source, file, idp)
    started = utcnow()
    progress("token")
    # The token check, the account and every list's first page at once (all reads: a bad token
    # fails them alike, and the token check's error is the one reported); each list's other pages
    # follow concurrently as soon as its first page says how many there are.
    token_call, account_call = in_background(client, client.verify_token), in_background(client, client.account)
    listings = {"pgs": client.permission_groups().start(), "members": client.members().start(),
                "rgs": in_background(client, client.resource_groups), "ugs": client.user_groups().start()}
    if reader.reads_scim:
        listings.update(scim_groups=client.scim_groups().start(), scim_users=client.scim_users().start())
    # A scan that fails stops the SCIM reader and drops every page asked for ahead.
    stop, reading = threading.Event(), list(listings.values())
    getattr(progress, "watch", lambda listings: None)(reading)  # their unread pages: the calls still to make
    with _stopping_on_error(stop, reading):
        token = token_call.result()
        # Every first page came in the token check's round trip: one that failed fails the scan now,
        # not when its listing is read, after the others have read ahead.
        for listing in listings.values():
            if isinstance(listing, Pages):
                listing.wait_first_page()
        progress("account")
        account = account_call.result()
        ugs = _collect(listings["ugs"], "user groups", progress)
        own_ids = inventory.own_user_group_ids()
        # One member listing per User Group, started now, before the permission groups are read:
        # they fill the round trip in which the other lists read page 2 alone. A plan may adopt a
        # group (adopting grants the role to everyone in it), and everyone holds what their groups
        # grant, vgmigrate's own included (the effective access after a migration).
        adoptable = [(g, client.user_group_members(g["id"]).start()) for g in ugs]
        reading.extend(listing for _, listing in adoptable)
        pgs = _collect(listings["pgs"], "permission groups", progress)
        with inventory.scan_writer() as writer, ThreadPoolExecutor(1, thread_name_prefix="vgmigrate-scim") as background:
            # Cloudflare's SCIM view is read on a thread of its own while the members are staged here:
            # one after the other, the two longest listings took the sum of their times.
            reader.start(background, listings, stop)
            fingerprint = Fingerprint()

            def stage(table, rows):
                writer.insert(table, fingerprint.rows(table, rows))

            # Tables are staged in name order, the order the fingerprint reads them.
            stage("accounts", [_account_row(account)])
            members, roles = [], {}
            stage("members", _member_rows(listings["members"], members, roles, client.account_id, progress))
            progress("resource groups")
            rgs = listings["rgs"].result()
            vgs, scim_ids, source_findings = reader.virtual_groups(client, listings, ugs, progress)

            # Members of the groups read (a member holds what its groups grant), before the analysis.
            group_members = list(_adoptable_members(adoptable, progress))
            vg_rows, vgm_rows, findings, held = analyse(client.account_id, vgs, pgs, members, ugs, mapping, own_group_ids=own_ids,
                                                        group_members=group_members)
            if source_findings:
                findings = sort_findings(findings + source_findings)
            if scim_ids is None:
                findings = sort_findings(findings + [Finding(
                    "warning", "scim_unreadable", client.account_id,
                    "the token cannot read SCIM groups, so which User Groups your IdP manages is unknown",
                    "adopt no group you are not sure about, or scan with a token that has SCIM Provisioning Read")])
            writer.insert("held_access", held)  # worked out from rows the fingerprint has read
            stage("permission_groups", map(_permission_group_row, pgs))
            stage("resource_groups", (_resource_group_row(rg, client.account_id) for rg in rgs))
            stage("roles", ({"id": role_id, "name": role.get("name"), "raw": dumps(role)} for role_id, role in roles.items()))
            stage("user_group_members", group_members)
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
                "source": reader.name,
                "token_kind": token.get("kind"),
                "started_at": started,
                "finished_at": utcnow(),
                "counts": dumps(counts),
                "fingerprint": fingerprint.hexdigest(),
                "mapping": dumps(mapping or {}),  # its content: `plan` resolves roles the same way
            }
            scan_id = writer.save(scan, findings)
    return scan_id, counts, findings


# ---- one reader per source: where the virtual groups come from ------------------------------------


def source_reader(source, file=None, idp=None):
    """The reader of `--source`; a one-line error when it cannot run."""
    if source == "file":
        return FileSource(file)
    if source in IDPS:
        if idp is None:
            raise UsageProblem(f"--source {source} needs the IdP's variables set (see `vgmigrate scan --help`)")
        return IdpSource(idp)
    return CloudflareSource()


class CloudflareSource:
    """Cloudflare's own SCIM view, read on a thread of its own while the members are staged."""

    name = "cloudflare"
    reads_scim = True  # the SCIM groups and users are listed with the other listings

    def start(self, background, listings, stop):
        self.view = background.submit(_read_scim_view, listings, stop)

    def virtual_groups(self, client, listings, ugs, progress):
        """(virtual groups, SCIM group ids or None when unreadable, findings of the source)."""
        progress("virtual groups")
        scim_ids, vgs, users = self.view.result()
        progress("users", users)
        return vgs, scim_ids, []


class IdpSource:
    """The IdP's CF- groups, compared with Cloudflare's SCIM view (see _idp_source)."""

    reads_scim = True

    def __init__(self, idp):
        self.idp = idp
        self.name = idp.source

    def start(self, background, listings, stop):
        pass  # the SCIM view is read after the IdP's groups, to compare them

    def virtual_groups(self, client, listings, ugs, progress):
        return _idp_source(self.idp, listings, progress)


class FileSource:
    """An IdP's export file; Cloudflare's SCIM groups are read only to tell which User Groups an IdP manages."""

    reads_scim = False

    def __init__(self, file):
        self.file = file
        self.name = f"file:{file}"

    def start(self, background, listings, stop):
        pass

    def virtual_groups(self, client, listings, ugs, progress):
        vgs = sources.from_file(self.file)
        return vgs, _scim_group_ids(client, progress) if ugs else set(), []


def _read_scim_view(listings, stop):
    """(SCIM group ids, virtual groups, users read) from Cloudflare's SCIM listings; gives up
    when `stop` is set (the scan failed or was interrupted: no reason to read on)."""
    users = []

    def read_one():
        if stop.is_set():
            raise ScanStopped()
        users.append(1)

    scim_groups = list(listings["scim_groups"])
    vgs = sources.from_scim(scim_groups, listings["scim_users"], progress=read_one)
    return {g["id"] for g in scim_groups}, vgs, len(users)


class ScanStopped(Exception):
    """The scan ended with an error of its own while its SCIM view was still being read."""


@contextmanager
def _stopping_on_error(event, listings):
    """On an error, set `event` and cancel `listings` (Pages or Futures): no one will read them."""
    try:
        yield
    except BaseException:
        event.set()
        for listing in listings:
            listing.cancel()
        raise


def _idp_source(idp, listings, progress):
    """(virtual groups, SCIM group ids or None, findings) from the IdP's CF- groups.

    Cloudflare's SCIM view (read alongside, as for the cloudflare source) tells which User Groups
    an IdP manages and is compared group by group and member by member with the IdP: the two
    disagree when a sync is pending or failing, and then migrating from either side changes who
    holds a role.
    """
    progress(f"{idp.name} CF- groups")
    groups = idp.cf_groups(include_users=True)
    users = ()
    if any(g.get("users_obj") is None and g.get("users") for g in groups):  # a server that left members out
        progress(f"{idp.name} users")
        users = idp.users(groups_by_pk=[g["pk"] for g in groups if g.get("users_obj") is None])
    vgs = sources.from_idp(groups, users)
    findings = [
        Finding("info", "idp_inactive_members", vg.name,
                f"{len(vg.raw['inactive_members'])} inactive {idp.name} user(s) in this group are left out ({idp.name} deprovisions them in Cloudflare)",
                f"nothing, unless they should keep the role: reactivate them in {idp.name} and scan again")
        for vg in vgs if vg.raw.get("inactive_members")
    ]
    try:
        scim_groups = _collect(listings["scim_groups"], "virtual groups", progress)
        cloudflare_view = sources.from_scim(scim_groups, listings["scim_users"], progress=lambda: progress("users"))
    except CloudflareError as err:
        if err.status not in (401, 403, 404):
            raise
        return vgs, None, findings  # the caller says the SCIM view was unreadable
    return vgs, {g["id"] for g in scim_groups}, findings + compare_views(vgs, cloudflare_view, idp.name)


def compare_views(idp_groups, cloudflare_groups, idp_name="Authentik"):
    """Findings where the IdP's CF- groups and Cloudflare's virtual groups disagree (by name, then
    by member email). Pure."""
    findings = []
    theirs = {vg.name: vg for vg in cloudflare_groups}
    ours = {vg.name: vg for vg in idp_groups}
    for name, vg in ours.items():
        other = theirs.get(name)
        if other is None:
            findings.append(Finding(
                "warning", "idp_group_not_in_cloudflare", name,
                f"is in {idp_name} with {len(vg.member_emails)} member(s) but Cloudflare has no virtual group of that name with members: "
                "it is not synced, or its sync failed",
                f"check the sync (`vgmigrate idp check`); migrating from {idp_name} grants its role to members who may not hold it now"))
            continue
        for email in sorted(set(vg.member_emails) - set(other.member_emails)):
            findings.append(Finding(
                "warning", "idp_member_not_in_cloudflare", email,
                f"is in {quoted(name)} in {idp_name} but not in Cloudflare's virtual group: the sync has not reached Cloudflare",
                f"run a sync and check `vgmigrate idp check`; migrating from {idp_name} grants them the role"))
        for email in sorted(set(other.member_emails) - set(vg.member_emails)):
            findings.append(Finding(
                "warning", "cloudflare_member_not_in_idp", email,
                f"is in Cloudflare's virtual group {quoted(name)} but not in {idp_name}'s: migrating from {idp_name} drops their role",
                f"add them to the group in {idp_name} if they should keep it, or confirm the removal"))
    for name, other in theirs.items():
        if name not in ours:
            findings.append(Finding(
                "warning", "cloudflare_group_not_in_idp", name,
                f"is a virtual group in Cloudflare with {len(other.member_emails)} member(s) but {idp_name} has no CF- group of that name: "
                f"another IdP or an old sync made it, so a migration from {idp_name} leaves it out",
                f"scan with --source cloudflare to migrate it, or recreate the group in {idp_name}"))
    return findings


def _member_rows(listing, kept, roles, account_id, progress):
    """Inventory rows of the listed members; appends each member's `member_fields` to `kept` and
    records in `roles` each role met (see member_raw)."""
    shared = {}
    for m in listing:
        kept.append(member_fields(m, account_id, shared))
        progress("members")
        user = m.get("user") or {}
        yield {
            "id": m["id"],
            "email": email_key(m.get("email") or user.get("email")),
            "status": m.get("status"),
            "user_id": user.get("id"),
            "roles": dumps(sorted(r.get("name", "") for r in m.get("roles") or [])),
            "raw": dumps(member_raw(m, roles)),
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


def _adoptable_members(listings, progress):
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
        self._pending = bytearray()
        self._table = ""

    def rows(self, table, rows):
        """Yields `rows` unchanged while adding them to the digest."""
        if table < self._table:
            raise ValueError(f"fingerprint: table {table!r} after {self._table!r}; tables must come in name order")
        self._table = table
        batch, raws = [], []
        for row in rows:
            # The raw API JSON is already text: hashed as it is, its length in the row, rather
            # than JSON-escaped again inside it.
            raw = row.get("raw")
            if raw is not None:
                raws.append(raw)
            batch.append(row if raw is None else {**row, "raw": len(raw)})
            if len(batch) == FINGERPRINT_BATCH:
                self._add(table, batch, raws)
                batch, raws = [], []
            yield row
        self._add(table, batch, raws)

    def _add(self, table, batch, raws):
        # One encoding per batch of rows: per row, the call cost more than the encoding.
        pending = self._pending
        pending += table.encode()
        pending += dumps(batch).encode()
        for raw in raws:
            pending += raw.encode()
        if len(pending) >= 1 << 20:
            self._flush()

    def _flush(self):
        # In 1 MB pieces (the digest of a stream does not depend on how it is cut): once sha256 has
        # seen one large piece it gives up the GIL on every update, and each small one then waited
        # for the threads parsing pages (2.4 s of a 20,000-member scan).
        self._digest.update(self._pending)
        self._pending.clear()

    def hexdigest(self):
        self._flush()
        return self._digest.hexdigest()


FINGERPRINT_BATCH = 256  # rows encoded at once; part of the fingerprint's definition
