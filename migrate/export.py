"""Audit export: what vgmigrate saw, planned and did, as files an auditor can keep and query months
later; optionally joined to Cloudflare's own account audit log.

Tables come from the inventory views (`views.py`), so their column names are one contract. CSV and
JSONL write one file per table, JSON one document, Markdown and HTML a run summary a person reads.
Every format also writes each plan that was exported, byte for byte as approved (plans/<id>.json),
and a manifest.json with row counts and SHA-256 checksums, written last.

The API token is never stored, so it cannot be exported; as a second line of defence every value
is scrubbed of the secrets the caller names before it is written.
"""

import csv
import hashlib
import io
import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from . import __version__, views
from .findings import severity_counts, sorted_findings
from .names import is_hex_id
from .markup import esc, html_name, html_page, html_table, md_code, md_table, md_text
from .errors import CloudflareError, VgmigrateError
from .codec import UTCNOW_RESOLUTION, plan_text, utcnow
from .steps import in_cloudflare_audit_log, inverse_in_words
from .runs import FAILED, PENDING

FORMATS = ("csv", "json", "jsonl", "markdown", "html")

# Exported table -> (view, the id column that scopes it). Order is the order of files and sections.
TABLES = {
    "scans": ("scan_overview", "scan_id"),
    "virtual_groups": ("vg_overview", "scan_id"),
    "memberships": ("member_access", "scan_id"),
    "members": ("account_members", "scan_id"),
    "findings": ("findings_report", "scan_id"),
    "plans": ("plan_overview", "plan_id"),
    "plan_groups": ("plan_groups", "plan_id"),
    "rehearsals": ("plan_rehearsals", "plan_id"),
    "runs": ("run_overview", "run_id"),
    "journal": ("journal", "run_id"),
    "access_grants": ("access_grants", "run_id"),
}
# Columns added to the journal by the audit-log link, and the audit log table itself.
JOURNAL_AUDIT_COLUMNS = ("audit_log_ids", "audit_match")
NOT_AUDITED = "not in Cloudflare's audit log (a call to Authentik)"
AUDIT_LOG_COLUMNS = (
    "id", "when", "action", "result", "actor_email", "actor_id", "actor_type", "actor_ip", "interface",
    "resource_type", "resource_id", "method", "path", "cf_ray", "run_id", "seq", "match", "old_value", "new_value",
)
# Columns holding JSON text in the inventory: decoded in JSON and JSONL exports.
JSON_TEXT_COLUMNS = {"journal": ("request", "inverse", "response"), "virtual_groups": ("name_variants",)}
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
# Audit entries can be stamped by a clock a little off ours; and writes are retried.
AUDIT_TOLERANCE = timedelta(minutes=5)
FOLD_ROWS_OVER = 15


@dataclass
class Export:
    """Everything one export writes, gathered before any file is touched."""

    scope: dict
    tables: dict  # name -> list of row dicts
    columns: dict  # name -> tuple of column names
    plans: dict  # plan id -> canonical plan JSON text as approved
    account: dict
    audit: dict | None = None  # {since, before, entries, linked, unlinked_writes, other_changes, not_in_audit_log}
    files: list = field(default_factory=list)

    def summary_line(self, out_dir):
        counts = ", ".join(f"{len(self.tables[t])} {t.replace('_', ' ')}" for t in ("runs", "journal", "findings"))
        audit = ""
        if self.audit is not None:
            audit = f"; audit log: {self.audit['linked']} of {self.audit['entries']} entries linked to the journal"
        return f"exported {counts}{audit} to {out_dir} ({len(self.files)} files)"


# ---- gathering ---------------------------------------------------------------------------------------------


def collect(inventory, run_id=None, account_id=None):
    """Read the rows to export. With run_id: that run, the rollback that undid it (or the apply it
    undid), their plans and the scans those plans read. Without: everything of the account."""
    db = inventory.db
    views.ensure(db)
    runs = _scoped_runs(db, run_id, account_id)
    if run_id:
        plan_ids = sorted({r["plan_id"] for r in runs if r["plan_id"]})
        scan_ids = sorted({row["scan_id"] for row in _select(db, "plans", "id", plan_ids) if row["scan_id"] is not None})
    else:
        plan_ids = [r["id"] for r in _where_account(db, "plans", account_id)]
        scan_ids = [r["id"] for r in _where_account(db, "scans", account_id)]
    run_ids = [r["id"] for r in runs]
    keys = {"scan_id": scan_ids, "plan_id": plan_ids, "run_id": run_ids}

    tables, columns = {}, {}
    for name, (view, key) in TABLES.items():
        columns[name] = _view_columns(db, view)
        tables[name] = _select(db, view, key, keys[key])
    plans = {row["id"]: plan_text(row["body"]) for row in _select(db, "plans", "id", plan_ids)}
    acct = account_id or (runs[0]["account_id"] if runs else None)
    last = inventory.last_scan(acct) or {}
    account = {"id": acct or last.get("account_id"), "name": last.get("account_name")}
    scope = {"run": run_id, "account_id": account["id"], "runs": run_ids, "plans": plan_ids, "scans": scan_ids}
    return Export(scope=scope, tables=tables, columns=columns, plans=plans, account=account)


def _scoped_runs(db, run_id, account_id):
    if not run_id:
        return _where_account(db, "runs", account_id, order="started_at, rowid")
    run = next(iter(db.query("select * from runs where id = ?", [run_id])), None)
    if run is None:
        raise VgmigrateError(f"no run {run_id!r} in this inventory; `vgmigrate history` lists the runs")
    if account_id and run["account_id"] != account_id:
        raise VgmigrateError(f"run {run_id} belongs to account {run['account_id']}, not {account_id}; pass --account {run['account_id']}")
    related = {run_id, run["undoes"]} - {None}
    related |= {r["id"] for r in db.query("select id from runs where undoes = ?", [run_id])}
    return _select(db, "runs", "id", sorted(related), order="started_at, rowid")


def _where_account(db, table, account_id, order="rowid"):
    where, params = ("where account_id = ?", [account_id]) if account_id else ("", [])
    return list(db.query(f"select * from [{table}] {where} order by {order}", params))


def _select(db, table, key, values, order=None):
    if not values:
        return []
    marks = ", ".join("?" for _ in values)
    order_by = f" order by {order}" if order else ""
    return list(db.query(f"select * from [{table}] where [{key}] in ({marks}){order_by}", list(values)))


def _view_columns(db, view):
    return tuple(row["name"] for row in db.query(f"select name from pragma_table_info('{view}')"))


# ---- Cloudflare's audit log -----------------------------------------------------------------------------------


def audit_window(runs, tolerance=AUDIT_TOLERANCE, now=None):
    """(since, before) covering every run, widened by the tolerance; None when there are no runs."""
    starts = [_instant(r["started_at"]) for r in runs if r.get("started_at")]
    if not starts:
        return None
    ends = [_instant(r["finished_at"]) if r.get("finished_at") else (now or datetime.now(timezone.utc)) for r in runs]
    return min(starts) - tolerance, max(ends + starts) + tolerance


def fetch_audit_entries(client, since, before):
    """Cloudflare's audit entries for the window: Audit Logs v2 when the account and token have it
    (its entries carry each call's cf-ray, and it is where SCIM operations are logged), else v1
    (v2 answering 403 or 404)."""
    try:
        return list(client.audit_logs_v2(since, before))
    except CloudflareError as err:
        if err.status not in (403, 404):
            raise
    return list(client.audit_logs(since=since, before=before))


def _is_v2(entry):
    return isinstance(entry.get("raw"), dict)


def _ray(value):
    """A cf-ray without its colo suffix: '8661087...-IAD' and '8661087...' are the same request."""
    return str(value or "").split("-", 1)[0].strip().lower()


def _entry_facts(entry):
    """(when, method, path, resource id, resource kind or None, cf-ray) of a v1 or v2 entry."""
    resource = entry.get("resource") if isinstance(entry.get("resource"), dict) else {}
    rtype = resource.get("type")
    if _is_v2(entry):
        raw = entry["raw"]
        action = entry.get("action") if isinstance(entry.get("action"), dict) else {}
        return (_instant(action.get("time")), (raw.get("method") or "").upper(), _norm_path(raw.get("uri")),
                str(resource.get("id") or "").lower(), rtype, _ray(raw.get("cf_ray_id")))
    meta = entry.get("metadata") if isinstance(entry.get("metadata"), dict) else {}
    return (_instant(entry.get("when")), (meta.get("method") or "").upper(), _norm_path(meta.get("path")),
            str(resource.get("id") or "").lower(), rtype, "")


def link_audit_log(journal, entries, tolerance=AUDIT_TOLERANCE):
    """Pair Cloudflare audit entries with the journal rows (writes) that caused them. Pure.

    An Audit Logs v2 entry names the cf-ray of the request that made it, and the journal records
    each call's cf-ray: the same ray links them for certain. Otherwise (v1 entries, or a write
    whose response, and so its ray, was lost) an entry links to a write made within `tolerance` of
    it that names the same object: the entry's resource id among the ids the write touched, or,
    when the object is unknown to one side, the same method and path. Among several candidates the
    best evidence wins (both, then the member/group kind when the entry has one), then the closest
    in time. Returns (audit_log_rows, links) where links maps (run_id, seq) -> [(entry id, how)].
    """
    writes = [w for w in journal if (w.get("method") or "").upper() in WRITE_METHODS]
    facts = [(w, _write_ids(w), _norm_path(w.get("path")), *_window(w)) for w in writes]
    by_ray = {}
    for w in writes:
        if _ray(w.get("cf_ray")):
            by_ray.setdefault(_ray(w.get("cf_ray")), w)
    rows, links = [], {}
    for entry in entries:
        when, e_method, e_path, e_resource, e_type, e_ray = _entry_facts(entry)
        best = None
        if e_ray and e_ray in by_ray:
            best = (None, by_ray[e_ray], "cf-ray")
        e_is_member = None if not e_type else "member" in e_type
        for w, ids, path, start, end in ([] if best else facts):
            if when is None or not (start - tolerance <= when <= end + tolerance):
                continue
            by_path = bool(e_path) and e_path == path and e_method == (w["method"] or "").upper()
            by_resource = bool(e_resource) and e_resource in ids
            # A path alone is weak evidence (every create POSTs to the same collection): it links
            # only when one side does not know the object, e.g. a write whose response was lost.
            if not (by_resource or (by_path and not (e_resource and w.get("object_id")))):
                continue
            # An entry without a resource type (v1 publishes none for these objects) says nothing of its kind.
            kind_fits = e_is_member is None or e_is_member == ("member" in (w.get("action") or w.get("kind") or ""))
            distance = 0 if start <= when <= end else min(abs((when - start).total_seconds()), abs((when - end).total_seconds()))
            # Equally close, the write that ended first: a later entry can only be a write still running
            # (a group's create and then its member add, both in flight in the entry's millisecond).
            score = (by_path + by_resource, kind_fits, -distance, -end.timestamp())
            if best is None or score > best[0]:
                how = " and ".join(h for h, ok in (("method and path", by_path), ("resource id", by_resource)) if ok)
                best = (score, w, how)
        row = _audit_row(entry)
        if best:
            _, w, how = best
            row.update(run_id=w["run_id"], seq=w["seq"], match=how)
            links.setdefault((w["run_id"], w["seq"]), []).append((row["id"], how))
        rows.append(row)
    rows.sort(key=lambda r: (r["when"] or "", r["id"] or ""))
    return rows, links


def _audit_row(entry):
    action, actor = entry.get("action") or {}, entry.get("actor") or {}
    resource = entry.get("resource") or {}
    if _is_v2(entry):
        raw = entry["raw"]
        values = {
            "id": entry.get("id"), "when": action.get("time"), "action": action.get("type"), "result": action.get("result"),
            "actor_email": actor.get("email"), "actor_id": actor.get("id"), "actor_type": actor.get("type"),
            "actor_ip": actor.get("ip_address"), "interface": actor.get("context"), "resource_type": resource.get("type"),
            "resource_id": resource.get("id"), "method": raw.get("method"), "path": raw.get("uri"), "cf_ray": raw.get("cf_ray_id"),
            "run_id": None, "seq": None, "match": None,
            "old_value": _text(resource.get("request")), "new_value": _text(resource.get("response")),
        }
        return {c: values[c] for c in AUDIT_LOG_COLUMNS}
    meta = entry.get("metadata") if isinstance(entry.get("metadata"), dict) else {}
    values = {
        "id": entry.get("id"), "when": entry.get("when"), "action": action.get("type"), "result": action.get("result"),
        "actor_email": actor.get("email"), "actor_id": actor.get("id"), "actor_type": actor.get("type"), "actor_ip": actor.get("ip"),
        "interface": entry.get("interface"), "resource_type": resource.get("type"), "resource_id": resource.get("id"),
        "method": meta.get("method"), "path": meta.get("path"), "cf_ray": None, "run_id": None, "seq": None, "match": None,
        "old_value": _text(entry.get("oldValue")), "new_value": _text(entry.get("newValue")),
    }
    return {c: values[c] for c in AUDIT_LOG_COLUMNS}


def _text(value):
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _write_ids(row):
    """Every object id a journal row touched: the object, ids in its path, ids in its request."""
    ids = {str(row.get("object_id") or "").lower()}
    ids |= {seg.lower() for seg in (row.get("path") or "").split("/") if is_hex_id(seg)}
    request = row.get("request")
    if isinstance(request, str):
        try:
            request = json.loads(request)
        except ValueError:
            request = None
    if isinstance(request, dict):
        ids |= {str(request[k]).lower() for k in ("id", "group") if isinstance(request.get(k), str)}
    return ids - {""}


def _norm_path(path):
    """Paths relative to the API base: '/client/v4/accounts/..' and '/accounts/..' are the same."""
    if not path:
        return ""
    path = path.split("?", 1)[0].rstrip("/")
    at = path.find("/accounts/")
    return path[at:] if at >= 0 else path


def _window(row):
    """When a journal row's call was in flight: its times are cut to the millisecond, so a write
    recorded as finished at .048 may have finished at .0489, after an entry made at .0487."""
    start = _instant(row.get("started_at")) or datetime.min.replace(tzinfo=timezone.utc)
    return start, (_instant(row.get("finished_at")) or start) + UTCNOW_RESOLUTION


def _instant(text):
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def attach_audit_log(export, entries, window):
    """Add the audit_log table and the journal's audit columns to an export."""
    rows, links = link_audit_log(export.tables["journal"], entries)
    for row in export.tables["journal"]:
        found = links.get((row["run_id"], row["seq"]), [])
        row["audit_log_ids"] = " ".join(entry_id for entry_id, _ in found) or None
        row["audit_match"] = "; ".join(sorted({how for _, how in found})) or (None if in_cloudflare_audit_log(row["action"]) else NOT_AUDITED)
    export.columns["journal"] = export.columns["journal"] + JOURNAL_AUDIT_COLUMNS
    export.tables["audit_log"] = rows
    export.columns["audit_log"] = AUDIT_LOG_COLUMNS
    sent = [r for r in export.tables["journal"] if (r["method"] or "").upper() in WRITE_METHODS and r["outcome"] != FAILED]
    writes = [r for r in sent if in_cloudflare_audit_log(r["action"])]
    export.audit = {
        "source": ("v2" if any(_is_v2(e) for e in entries) else "v1") if entries else None,
        "since": _stamp(window[0]) if window else None,
        "before": _stamp(window[1]) if window else None,
        "entries": len(rows),
        "linked": sum(1 for r in rows if r["run_id"]),
        "unlinked_writes": [f"{r['run_id']}#{r['seq']}" for r in writes if not r["audit_log_ids"]],
        "other_changes": sum(1 for r in rows if not r["run_id"]),
        # Authentik's calls, in its own log (those linked made Authentik push to Cloudflare: that is logged)
        "not_in_audit_log": sum(1 for r in sent if r["audit_match"] == NOT_AUDITED),
    }


def _stamp(moment):
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# ---- writing ------------------------------------------------------------------------------------------------


def export_audit(inventory, fmt, out_dir, run_id=None, account_id=None, fetch_audit_log=None, secrets=(), now=None):
    """Write an audit export of `fmt` into `out_dir` (created if missing) and return the Export.

    fetch_audit_log(since, before) -> iterable of audit entries, v2 or v1 (`fetch_audit_entries`
    reads v2 and falls back to v1); when given, the account audit
    log for the runs' time window is read and linked to the journal. `secrets` (the API token) are
    scrubbed from every value, and any file still holding one is an error.
    """
    if fmt not in FORMATS:
        raise VgmigrateError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    out = _prepare(out_dir)
    export = collect(inventory, run_id, account_id)
    if fetch_audit_log is not None:
        window = audit_window(export.tables["runs"], now=now)
        entries = list(fetch_audit_log(window[0], window[1])) if window else []
        attach_audit_log(export, entries, window)
    secrets = [s for s in secrets if s]
    export.tables = {name: [_scrub(row, secrets) for row in rows] for name, rows in export.tables.items()}
    export.plans = {pid: _scrub(body, secrets) for pid, body in export.plans.items()}
    exported_at = now_stamp(now)

    files = {}  # relative name -> (text, table or None, rows)
    for plan_id, body in export.plans.items():
        files[f"plans/{plan_id}.json"] = (plan_file_text(body), None, None)
    if fmt == "csv":
        for name, rows in export.tables.items():
            files[f"{name}.csv"] = (to_csv(rows, export.columns[name]), name, len(rows))
    elif fmt == "jsonl":
        for name, rows in export.tables.items():
            files[f"{name}.jsonl"] = (to_jsonl(name, rows), name, len(rows))
    elif fmt == "json":
        doc = {"export": _scope_doc(export, exported_at), "tables": {n: [decode_json(n, r) for r in rows] for n, rows in export.tables.items()}}
        files["export.json"] = (json.dumps(doc, indent=2, ensure_ascii=False, sort_keys=False) + "\n", None, None)
    elif fmt == "markdown":
        files["summary.md"] = (summary_markdown(export, exported_at), None, None)
    else:
        files["summary.html"] = (summary_html(export, exported_at), None, None)

    manifest = {**_scope_doc(export, exported_at), "format": fmt, "files": []}
    for name, (text, table, rows) in files.items():
        data = text.encode("utf-8")
        if any(s.encode("utf-8") in data for s in secrets):
            raise VgmigrateError(f"refusing to write {name}: it would contain the API token")
        write_file(out / name, data)
        item = {"name": name, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        if table:
            item.update(table=table, rows=rows, columns=list(export.columns[table]))
        manifest["files"].append(item)
    write_file(out / "manifest.json", (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
    export.files = [f["name"] for f in manifest["files"]] + ["manifest.json"]
    return export


def plan_file_text(body):
    """The plan as `plan --out` wrote it (same layout as planfile.write), so `vgmigrate show` reads it."""
    return json.dumps(json.loads(body), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def now_stamp(now=None):
    return _stamp(now) if now else utcnow()


def _scope_doc(export, exported_at):
    return {"tool": f"vgmigrate {__version__}", "exported_at": exported_at, "account": export.account, "scope": export.scope,
            "audit_log": export.audit}


def _prepare(out_dir):
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise VgmigrateError(f"--out {out} is a file; give a directory (it is created if missing)")
    try:
        (out / "plans").mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise VgmigrateError(f"cannot create {out}: {err.strerror}; choose a writable --out directory") from None
    return out


def write_file(path, data):
    """Write whole or not at all, so a crash never leaves a half file that looks complete."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as err:
        raise VgmigrateError(f"cannot write {path}: {err.strerror}") from None


def _scrub(value, secrets):
    if not secrets:
        return value
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, "[redacted]")
        return value
    if isinstance(value, dict):
        return {k: _scrub(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v, secrets) for v in value]
    return value


def to_csv(rows, columns):
    """RFC 4180 CSV with a header of the stable column names; None is an empty cell."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_csv_cell(row.get(c)) for c in columns])
    return buf.getvalue()


def _csv_cell(value):
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def decode_json(table, row):
    """A row with its JSON-text columns decoded, for JSON and JSONL."""
    row = dict(row)
    for col in JSON_TEXT_COLUMNS.get(table, ()):
        if isinstance(row.get(col), str):
            try:
                row[col] = json.loads(row[col])
            except ValueError:
                pass
    return row


def to_jsonl(table, rows):
    return "".join(json.dumps(decode_json(table, row), ensure_ascii=False) + "\n" for row in rows)


# ---- the run summary an auditor reads --------------------------------------------------------------------------


def summary_sections(export, exported_at):
    """The summary as format-neutral sections: (title, paragraphs, headers, rows, row classes).
    Cells are plain strings or (kind, text): "code" a name shown verbatim, "id" an identifier kept
    on one line, "time" a timestamp, "severity" a finding severity."""
    t = export.tables
    account = export.account
    sections = []
    scope = f"run {export.scope['run']} and the runs linked to it" if export.scope["run"] else "every run in the inventory"
    intro = [
        f"Account {account.get('name') or ''} ({account.get('id') or 'unknown'}); exported {exported_at} by vgmigrate {__version__}.",
        f"Scope: {scope}. {len(t['runs'])} run(s), {len(t['journal'])} journaled API call(s), "
        f"{len(t['plans'])} plan(s), {len(t['scans'])} scan(s).",
        "The journal records every write vgmigrate sent, before it was sent; the API token is never recorded.",
    ]
    sections.append(("Scope", intro, None, None, None))

    sections.append(("Runs", [] if t["runs"] else ["No runs recorded."], ["Run", "Kind", "Status", "Plan", "Started", "Finished", "Steps", "Message"], [
        [("id", r["run_id"]), r["kind"], r["status"], ("id", (r["plan_id"] or "")[:12]), ("time", r["started_at"]), ("time", r["finished_at"]),
         f"{r['done']} done, {r['failed']} failed, {r['pending']} pending, {r['rolled_back']} rolled back", r["message"] or ""]
        for r in t["runs"]
    ], None))

    if t["plans"]:
        sections.append(("Plans written", ["Every plan file `plan --out` wrote (a plan is approved by handing it to apply: the runs "
                                           "above name the plan each applied). Each is included under plans/ as written; its id is the "
                                           "SHA-256 of its content, so vgmigrate show plans/<id>.json proves it unchanged."],
                         ["Plan", "Created", "Scan", "User Groups", "Not migrated", "Findings", "Steps", "On existing", "Rehearsed"], [
            [("id", p["plan_id"]), ("time", p["created_at"]), str(p["scan_id"]), str(p["user_groups"]), str(p["not_migrated"]), str(p["findings"]),
             str(p["steps"]), p["on_existing"] or "", _rehearsed(t["rehearsals"], p["plan_id"])] for p in t["plans"]
        ], None))

    grants = t["access_grants"]
    sections.append(("Access granted", [
        "Who was added to which User Group, when, and the virtual group(s) that justified it."
    ] if grants else ["No access was granted by the runs in scope."], ["When", "Member", "User Group", "Permission group", "Because of (virtual groups)", "Outcome"], [
        [("time", g["granted_at"]), ("nowrap", g["email"] or g["member_id"]), ("code", g["user_group"] or ""), g["permission_group"] or "",
         ("code", (g["because_of"] or "").replace("\n", "; ")),
         g["outcome"] + (f" at {_when(g['rolled_back_at'])}" if g["rolled_back_at"] else "")]
        for g in grants
    ], ["lost" if g["outcome"] in (FAILED, "outcome unknown") else "" for g in grants]))

    audit_on = export.audit is not None
    headers = ["#", "Time", "Call", "Target", "HTTP, cf-ray", "Outcome", "Undo recorded"] + (["Audit log entry"] if audit_on else [])
    prefix = f"/accounts/{account.get('id')}/" if account.get("id") else None
    if not t["journal"]:
        sections.append(("Journal", ["No API calls journaled."], None, None, None))
    for run in t["runs"]:
        # In the order the calls were sent (parallel steps finish out of plan order): # is that order.
        calls = sorted((a for a in t["journal"] if a["run_id"] == run["run_id"]), key=lambda a: (a["started_at"] or "", a["seq"]))
        rows, classes = [], []
        for order, a in enumerate(calls, 1):
            path = a["path"] or ""
            if prefix and path.startswith(prefix):
                path = path[len(prefix):]
            row = [str(order), ("time", a["started_at"]), ("code", f"{a['method']} {path}"), ("code", f"{a['step']}: {a['target'] or ''}"),
                   ("nowrap", " ".join(str(v) for v in (a["http_status"], a["cf_ray"]) if v)), _outcome(a), describe_inverse(a)]
            if audit_on:
                # Short ids keep the table readable; the audit log section and files have them in full.
                row.append(("id", " ".join(i[:8] + "\u2026" for i in a["audit_log_ids"].split())) if a.get("audit_log_ids") else a.get("audit_match") or "none found")
            rows.append(row)
            classes.append("lost" if a["outcome"] in (FAILED, PENDING) else "")
        lines = [f"{run['kind']} run, {run['status']}, started {_when(run['started_at'])}"
                 + (f", undoes {run['undoes']}" if run["undoes"] else "") + "."]
        if prefix and calls:
            lines.append(f"Paths are relative to {prefix}; the journal table has them in full, with each request and response.")
        sections.append((f"Journal of {run['run_id']}", lines, headers, rows, classes))

    if audit_on:
        sections += _audit_sections(export)

    counts = ", ".join(f"{n} {s}" for s, n in severity_counts(t["findings"]))
    serious = [f for f in sorted_findings(t["findings"]) if f["severity"] in ("critical", "error")]
    sections.append(("Findings at scan time", [f"Findings of the scan(s) the plans were made from: {counts or 'none'}. "
                                               "Critical and error findings are listed; every finding is in the findings table."],
                     ["Scan", "Severity", "Code", "Subject", "Problem", "What to do"], [
        [str(f["scan_id"]), ("severity", f["severity"]), ("id", f["code"]), ("code", f["subject"]), f["message"], f["what_to_do"] or ""] for f in serious
    ], None))
    return sections


def _audit_sections(export):
    audit = export.audit
    rows = export.tables["audit_log"]
    if audit["since"] is None:
        return [("Cloudflare audit log", ["No runs in scope, so no time window to read the audit log for."], None, None, None)]
    lines = [
        f"Account audit log read for {audit['since']} to {audit['before']}: {audit['entries']} entries, "
        f"{audit['linked']} linked to journaled calls, {audit['other_changes']} made by something else in the window.",
    ]
    if audit.get("not_in_audit_log"):
        lines.append(f"{audit['not_in_audit_log']} journaled call(s) went to Authentik: they are not in Cloudflare's audit log "
                     "(Authentik's own event log has them), and are marked so in the journal.")
    if audit["unlinked_writes"]:
        lines.append(f"{len(audit['unlinked_writes'])} journaled write(s) have no matching audit entry "
                     f"({', '.join(audit['unlinked_writes'][:10])}{'...' if len(audit['unlinked_writes']) > 10 else ''}); "
                     "entries can take a few minutes to appear, so export again later before concluding anything.")
    table = [[("time", e["when"]), e["actor_email"] or e["actor_id"] or "", f"{e['action']} {e['resource_type']}", ("id", e["resource_id"]),
              ("id", f"{e['run_id']}#{e['seq']}") if e["run_id"] else "not vgmigrate", e["match"] or "", ("id", e["id"])]
             for e in rows]
    classes = ["" if e["run_id"] else "warn" for e in rows]
    return [("Cloudflare audit log", lines, ["When", "Actor", "Action", "Resource", "Journal call", "Matched by", "Entry id"], table, classes)]


def _rehearsed(rehearsals, plan_id):
    mine = [r for r in rehearsals if r["plan_id"] == plan_id]
    if not mine:
        return "no"
    last = mine[-1]
    return f"{last['result']} at {_when(last['at'])} ({last['apply_calls']} calls)"


def _when(text):
    """A timestamp as people read it: date, space, time (the files keep ISO 8601)."""
    return str(text).replace("T", " ", 1) if text else ""


def _outcome(action):
    text = action["outcome"].replace("_", " ")
    if action["error"]:
        text += f": {action['error']}"
    if action["undo_note"]:
        text += f" ({action['undo_note']} at {_when(action['undone_at'])})"
    return text


def describe_inverse(action):
    """The undo recorded for a call, in words."""
    try:
        inverse = json.loads(action["inverse"]) if isinstance(action.get("inverse"), str) else action.get("inverse")
    except ValueError:
        return str(action["inverse"])
    if not inverse:
        request = action.get("request")
        if isinstance(request, str) and "undoes" in request:
            return "undoes " + json.loads(request).get("undoes", "")
        return "-"
    return inverse_in_words(inverse)


def summary_markdown(export, exported_at):
    title = f"vgmigrate audit export: {export.account.get('name') or export.account.get('id') or 'inventory'}"
    out = [f"# {md_text(title)}", ""]
    for name, lines, headers, rows, _classes in summary_sections(export, exported_at):
        out += [f"## {md_text(name)}", ""]
        out += [md_text(line) + "\n" for line in lines]
        if headers and rows:
            out += [md_table([md_text(h) for h in headers], [[_md_cell(c) for c in row] for row in rows]), ""]
    return "\n".join(out).rstrip() + "\n"


def _md_cell(cell):
    if not isinstance(cell, tuple):
        return md_text(cell)
    kind, text = cell
    if not text:
        return ""
    if kind in ("code", "id"):
        return md_code(text)
    if kind == "severity" and text in ("critical", "error"):
        return f"**{md_text(text)}**"
    if kind == "time":
        return md_text(_when(text))
    return md_text(text)


def summary_html(export, exported_at):
    title = f"vgmigrate audit export: {export.account.get('name') or export.account.get('id') or 'inventory'}"
    parts = [f"<h1>{esc(title)}</h1>"]
    for name, lines, headers, rows, classes in summary_sections(export, exported_at):
        parts.append(f"<h2>{esc(name)}</h2>")
        parts += [f"<p>{esc(line)}</p>" for line in lines]
        if headers and rows:
            cls = "journal" if name.startswith("Journal of") else None
            table = html_table([esc(h) for h in headers], [[_html_cell(c) for c in row] for row in rows], classes, cls=cls)
            if len(rows) > FOLD_ROWS_OVER:  # open: an auditor reads and prints it; folding is there to skip it
                table = f"<details open><summary>{len(rows)} rows</summary>{table}</details>"
            parts.append(table)
    return html_page(title, "\n".join(parts))


def _html_cell(cell):
    if not isinstance(cell, tuple):
        return esc(cell)
    kind, text = cell
    if not text:
        return ""
    if kind == "code":
        return html_name(text)
    if kind == "id":
        return f'<code class="ident nowrap">{esc(text)}</code>'
    if kind == "time":
        return esc(_when(text))
    if kind == "severity":
        return f'<span class="badge sev-{esc(text)}">{esc(text)}</span>'
    if kind == "nowrap":
        return f'<span class="nowrap">{esc(text)}</span>'
    return esc(text)
