"""The local SQLite inventory and journal: schema, and every SQL write the tool makes.

Scanned objects keep their raw API JSON beside typed columns. Each scan is one transaction, so a
failed scan leaves the previous one intact. Journal transitions are one transaction each, so a
crash leaves a true record of what was sent.
"""

import json
import os
import sqlite3
import tempfile
import threading
from contextlib import contextmanager

import sqlite_utils
from sqlite_utils.migrations import Migrations

from . import iam, views
from .codec import dumps, dumps_chunks, loads_shared, utcnow
from .steps import kind_of, kinds_where
from .views import sql_list
from .errors import UsageProblem, VgmigrateError
from .runs import DONE, PENDING, RUNNING, UNDONE

migrations = Migrations("vgmigrate")


def _decode(text):
    return json.loads(text) if text is not None else None


# Every table that belongs to one scan carries scan_id in its primary key: scans never overwrite
# each other, and plans point at the exact rows they read.
SCAN_TABLES = {
    "accounts": {"id": str, "name": str, "type": str, "raw": str},
    "permission_groups": {"id": str, "name": str, "scopes": str, "deprecated": int, "raw": str},
    "resource_groups": {"id": str, "name": str, "scope_key": str, "objects": str, "account_wide": int, "raw": str},
    # raw: the member as listed, each role the scan's `roles` table holds written as {"id": ...}
    # (member_as_listed restores it).
    "members": {"id": str, "email": str, "status": str, "user_id": str, "roles": str, "raw": str},
    # Each account role as the members listing carries it, once per scan: listed in every member,
    # a role's permissions were 60% of a 100,000-member inventory.
    "roles": {"id": str, "name": str, "raw": str},
    # scim_managed: the group's id is a SCIM group's id, so the IdP owns its name and members.
    "user_groups": {"id": str, "name": str, "policies": str, "scim_managed": int, "raw": str},
    # Members of every User Group: adopting a group grants its role to each of them, so the plan
    # must name them, and each holds what the group grants (held_access). Scans made before
    # m007 have the members of the groups vgmigrate did not make only.
    "user_group_members": {"user_group_id": str, "member_id": str, "email": str, "status": str},
    "virtual_groups": {
        "id": str,
        "name": str,
        "account_id": str,
        "role": str,
        "variants": str,
        "resolution": str,
        "method": str,
        "permission_group_id": str,
        "permission_group_name": str,
        "resolution_message": str,
        "raw": str,
    },
    # holds: 1 when the member holds the group's role in Cloudflare today (under its old or its new
    # name, through anything: iam.held_access), 0 when not, null for one who is not an account member.
    "virtual_group_members": {
        "virtual_group_id": str,
        "email": str,
        "member_id": str,
        "member_status": str,
        "holds": int,
    },
    # What each account member holds on the whole account and through what (iam.held_access): one
    # row per permission group per way it is held. permission_group: the name Cloudflare gives it
    # today (a legacy role under an old name resolved through the rename table); held_as: the name
    # it is held under; via: the role, User Group or virtual group ("" for an own policy).
    "held_access": {"member_id": str, "email": str, "permission_group": str, "held_as": str, "through": str, "via": str},
}
JSON_COLUMNS = {"raw", "roles", "policies", "variants", "scopes", "objects"}
SCAN_TABLE_PKS = {
    "virtual_group_members": ("scan_id", "virtual_group_id", "email"),
    "user_group_members": ("scan_id", "user_group_id", "member_id"),
    "held_access": ("scan_id", "member_id", "held_as", "through", "via"),
}
# What migrations m002, m005 and m007 added; m001 creates the tables as they first were.
M002_COLUMNS = {("resource_groups", "account_wide"), ("user_groups", "scim_managed")}
M002_TABLES = {"user_group_members"}
M005_TABLES = {"roles"}
M007_COLUMNS = {("virtual_group_members", "holds")}
M007_TABLES = {"held_access"}


def member_raw(member, roles):
    """A listed member as members.raw records it: each role equal to the one `roles` (id -> role,
    filled as met, then staged in the `roles` table) holds for its id written as {"id": ...}.
    A role that differs stays whole, wrapped as {"listed": ...} if it could read as one of those,
    so member_as_listed gives back exactly the member as listed."""
    listed = member.get("roles")
    if not isinstance(listed, list) or not listed:
        return member
    written = []
    for role in listed:
        role_id = role.get("id") if isinstance(role, dict) else None
        if isinstance(role_id, str) and roles.setdefault(role_id, role) == role:
            written.append({"id": role_id})
        elif isinstance(role, dict) and len(role) == 1 and ("id" in role or "listed" in role):
            written.append({"listed": role})
        else:
            written.append(role)
    return {**member, "roles": written}


def member_as_listed(raw, roles):
    """The member as listed, from its members.raw and its scan's roles (id -> role)."""
    listed = raw.get("roles")
    if not isinstance(listed, list):
        return raw
    return {**raw, "roles": [_role_as_listed(role, roles) for role in listed]}


def _role_as_listed(role, roles):
    if isinstance(role, dict) and len(role) == 1:
        if "listed" in role:
            return role["listed"]
        if isinstance(role.get("id"), str):
            return roles.get(role["id"], role)  # scans made before the roles table have none
    return role


@migrations()
def m001_initial(db):
    db["scans"].create(
        {
            "id": int,
            "account_id": str,
            "account_name": str,
            "source": str,
            "token_kind": str,
            "started_at": str,
            "finished_at": str,
            "counts": str,
            "fingerprint": str,
        },
        pk="id",
    )
    for name, columns in SCAN_TABLES.items():
        if name not in M002_TABLES | M005_TABLES | M007_TABLES:
            _create_scan_table(db, name, {c: t for c, t in columns.items() if (name, c) not in M002_COLUMNS | M007_COLUMNS})
    db["findings"].create(
        {
            "scan_id": int,
            "seq": int,
            "severity": str,
            "code": str,
            "subject": str,
            "message": str,
            "action": str,
        },
        pk=("scan_id", "seq"),
        foreign_keys=[("scan_id", "scans", "id")],
    )
    db["plans"].create(
        {
            "id": str,
            "created_at": str,
            "account_id": str,
            "scan_id": int,
            "mode": str,
            "steps": int,
            "body": bytes,  # canonical JSON, UTF-8 (save_plan says why not TEXT)
        },
        pk="id",
    )
    db["runs"].create(
        {
            "id": str,
            "kind": str,  # apply | rollback
            "plan_id": str,
            "undoes": str,  # for a rollback: the apply run it undoes
            "account_id": str,
            "status": str,  # running | done | failed | interrupted
            "started_at": str,
            "finished_at": str,
            "message": str,
        },
        pk="id",
    )
    db["actions"].create(
        {
            "run_id": str,
            "seq": int,
            "step": str,  # the plan step id this row carries out (or undoes)
            "kind": str,
            "target": str,
            "method": str,
            "path": str,
            "request": str,
            "inverse": str,
            "status": str,  # pending | done | failed | rolled_back
            "object_id": str,  # id of the object created or touched, once known
            "response": str,
            "http_status": int,
            "cf_ray": str,
            "error": str,
            "started_at": str,
            "finished_at": str,
            "undone_at": str,
            "undo_note": str,
        },
        pk=("run_id", "seq"),
        foreign_keys=[("run_id", "runs", "id")],
    )
    db["rehearsals"].create(
        {
            "plan_id": str,
            "at": str,
            "passed": int,
            "apply": str,
            "apply_calls": int,
            "differences": int,
            "rollback": str,
            "restored": int,
            "summary": str,
        },
        pk=("plan_id", "at"),
    )
    db["locks"].create(
        {"name": str, "holder": str, "pid": int, "host": str, "run_id": str, "acquired_at": str},
        pk="name",
    )


@migrations()
def m002_scope_and_adoption(db):
    """Record which resource groups are account-wide (decided once, by iam.is_account_wide), which
    User Groups the IdP owns, and the members of groups a plan may adopt."""
    for table, column in sorted(M002_COLUMNS):
        db[table].add_column(column, SCAN_TABLES[table][column])
    for name in M002_TABLES:
        _create_scan_table(db, name, SCAN_TABLES[name])
    accounts = {row["id"]: row["account_id"] for row in db.query("select id, account_id from scans")}
    for row in list(db.query("select scan_id, id, raw from resource_groups")):
        wide = iam.is_account_wide(json.loads(row["raw"] or "{}"), accounts.get(row["scan_id"], ""))
        db.execute("update resource_groups set account_wide = ? where scan_id = ? and id = ?", [int(wide), row["scan_id"], row["id"]])


def _create_scan_table(db, name, columns):
    pk = SCAN_TABLE_PKS.get(name, ("scan_id", "id"))
    db[name].create({"scan_id": int, **columns}, pk=pk, foreign_keys=[("scan_id", "scans", "id")])


@migrations()
def m003_scan_mapping(db):
    """The role mapping a scan resolved with, so a later plan uses the same one."""
    db["scans"].add_column("mapping", str)


@migrations()
def m004_verifications(db):
    """Each `verify` of an apply run and what it found, so `status` knows a migration is verified."""
    db["verifications"].create(
        {"run_id": str, "at": str, "differences": int, "groups": int, "member_roles": int},
        pk=("run_id", "at"),
    )


@migrations()
def m005_roles(db):
    """Account roles once per scan, which members' raw JSON names by id from now on."""
    for name in M005_TABLES:
        _create_scan_table(db, name, SCAN_TABLES[name])


@migrations()
def m006_recent_calls(db):
    """The times of the API calls the last commands sent, per API and account: the next command
    counts those still in the rate-limit window as its own, not as other clients'."""
    db["recent_calls"].create({"api": str, "times": str}, pk="api")


@migrations()
def m007_held_access(db):
    """What each member holds and through what, per scan (the effective_access view), and whether
    each virtual group member holds its role today."""
    for table, column in sorted(M007_COLUMNS):
        db[table].add_column(column, SCAN_TABLES[table][column])
    for name in M007_TABLES:
        _create_scan_table(db, name, SCAN_TABLES[name])


class Inventory:
    """One open inventory file. Thread-safe: parallel apply workers share it for the journal."""

    def __init__(self, path):
        self.path = str(path)
        self._lock = threading.RLock()
        folder = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
            raise VgmigrateError(f"cannot open {self.path}: {folder} is not a writable folder; choose another --db path")
        if os.path.isdir(self.path):
            raise UsageProblem(f"cannot open {self.path}: it is a folder; point --db at a file, e.g. {os.path.join(self.path, 'vgmigrate.db')}")
        # Marked read-only (an auditor's copy, say): refused even where the OS would let us write.
        if os.path.exists(self.path) and not os.stat(self.path).st_mode & 0o222:
            raise VgmigrateError(
                f"{self.path} is read-only; make it writable (chmod u+w {self.path}) or point --db at a writable copy"
            )
        try:
            conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
            self.db = sqlite_utils.Database(conn)
            self.db.execute("PRAGMA journal_mode=WAL")
            # A journal row must survive a crash or power cut before the call it records is sent.
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self._check_version()
            migrations.apply(self.db)
            views.ensure(self.db)
            self._action_columns = set(self.db["actions"].columns_dict)
        except sqlite3.DatabaseError as err:
            raise VgmigrateError(
                f"{self.path} is not a usable vgmigrate inventory ({err}); "
                "point --db at another file or move this one aside"
            ) from None
        except OSError as err:
            raise VgmigrateError(f"cannot open {self.path}: {err.strerror}; choose a writable --db path") from None

    def _check_version(self):
        if not self.db["_sqlite_migrations"].exists():
            return
        known = {m.name for m in migrations._migrations}
        applied = {row["name"] for row in self.db.query("select name from _sqlite_migrations")}
        newer = sorted(applied - known)
        if newer:
            raise VgmigrateError(
                f"{self.path} was written by a newer vgmigrate (schema {', '.join(newer)}); "
                "upgrade vgmigrate to use it"
            )

    def close(self):
        self.db.close()

    @contextmanager
    def transaction(self):
        with self._lock, self.db.atomic():
            yield self.db

    # --- scans -------------------------------------------------------------------------------

    @contextmanager
    def scan_writer(self):
        """A ScanWriter for one scan: it stages rows as they are read, and its save() records them."""
        writer = ScanWriter(self)
        try:
            yield writer
        finally:
            writer.close()

    def save_scan(self, scan, tables, findings):
        """Write one complete scan atomically and return its id.

        `tables` maps table name -> iterable of row dicts (without scan_id); `findings` is a list of
        Finding.
        """
        with self.scan_writer() as writer:
            for name, rows in tables.items():
                writer.insert(name, rows)
            return writer.save(scan, findings)

    def last_scan(self, account_id=None):
        where, params = ("where account_id = ?", [account_id]) if account_id else ("", [])
        rows = list(self.db.query(f"select * from scans {where} order by id desc limit 1", params))
        return rows[0] if rows else None

    def scan(self, scan_id):
        rows = list(self.db.query("select * from scans where id = ?", [scan_id]))
        return rows[0] if rows else None

    def rows(self, table, scan_id, order_by="rowid"):
        return list(self.db.query(f"select * from [{table}] where scan_id = ? order by {order_by}", [scan_id]))

    def load_scan(self, scan_id, without=()):
        """Every row of one scan, JSON columns decoded: the input of planning and reports.
        `without`: tables the caller does not need (planner.UNREAD_TABLES for planning)."""
        data = {"scan": dict(self.scan(scan_id))}
        data["scan"]["counts"] = json.loads(data["scan"]["counts"])
        # One copy of each distinct string: a member's id and email recur in every group it is in,
        # and SQLite hands back a new string per row (~160,000 membership rows at 100,000 members).
        strings = {}
        share = strings.setdefault
        for table in [t for t in [*SCAN_TABLES, "findings"] if t not in without]:
            columns = [c for c in self.db[table].columns_dict if c != "scan_id"]
            order_by = "seq" if table == "findings" else "rowid"
            cursor = self.db.execute(f"select {', '.join(f'[{c}]' for c in columns)} from [{table}] where scan_id = ? order by {order_by}", [scan_id])
            data[table] = [
                {c: _decode(v) if c in JSON_COLUMNS else share(v, v) if type(v) is str else v for c, v in zip(columns, values)}
                for values in cursor
            ]
        return data

    # --- plans, runs and the journal -----------------------------------------------------------

    def save_plan(self, row):
        """Record a plan. Its body, its canonical JSON (or the plan itself, written as dumps() would
        give it), is stored as UTF-8 bytes filled in place piece by piece: SQLite holds two copies
        of a TEXT value while it records one (~100 MB for the 48 MB plan of 100,000 members), and
        none of a zero-filled BLOB. Readers cast it to text (plan_text, the views)."""
        body = row["body"]

        def chunks():
            return [body.encode()] if isinstance(body, str) else (chunk.encode() for chunk in dumps_chunks(body))

        columns = [c for c in row if c != "body"]
        with self.transaction() as db:
            cursor = db.execute(
                f"insert or replace into plans ({', '.join(columns)}, body) values ({', '.join('?' * len(columns))}, zeroblob(?))",
                [*(row[c] for c in columns), sum(map(len, chunks()))],
            )
            with db.conn.blobopen("plans", "body", cursor.lastrowid) as blob:
                for chunk in chunks():
                    blob.write(chunk)

    def run(self, run_id):
        rows = list(self.db.query("select * from runs where id = ?", [run_id]))
        return rows[0] if rows else None

    def runs(self, kind=None):
        where, params = ("where kind = ?", [kind]) if kind else ("", [])
        return list(self.db.query(f"select * from runs {where} order by started_at, rowid", params))

    def runs_for_plan(self, plan_id):
        return list(self.db.query("select * from runs where plan_id = ? and kind = 'apply' order by rowid", [plan_id]))

    def start_run(self, row):
        with self.transaction() as db:
            db["runs"].insert({"started_at": utcnow(), "status": RUNNING, **row})

    def update_run(self, run_id, **values):
        with self.transaction() as db:
            db["runs"].update(run_id, values)

    def actions(self, run_id, response=True):
        """The run's journal rows, oldest first, JSON columns decoded. response=False leaves out the
        answers (None): rollback never reads them, and each member add's answer lists every member
        it added (~60 MB of dicts at 100,000 members)."""
        columns = "*" if response else ", ".join("null as response" if c == "response" else c for c in self.db["actions"].columns_dict)
        with self._lock:  # parallel rollback reads while other threads write: one connection, one at a time
            rows = list(self.db.query(f"select {columns} from actions where run_id = ? order by seq", [run_id]))
        for row in rows:
            for key in ("request", "inverse", "response"):
                row[key] = json.loads(row[key]) if row[key] else None
        return rows

    def live_actions(self, run_id):
        """How many of the run's journal rows may still be live (done or pending, not undone)."""
        with self._lock:
            return self.db.execute(
                "select count(*) from actions where run_id = ? and status in (?, ?)", [run_id, DONE, PENDING]
            ).fetchone()[0]

    def created_groups(self, run_id, kinds):
        """{step: object id} of the run's done actions of `kinds` (the step kinds that make a
        group), without decoding every row's member lists."""
        marks = ", ".join("?" for _ in kinds)
        rows = self.db.execute(f"select step, object_id from actions where run_id = ? and kind in ({marks}) "
                               "and status = ? order by seq", [run_id, *kinds, DONE])
        return dict(rows.fetchall())

    def links(self, scan_id, columns):
        """The scan's virtual group memberships as tuples of `columns`, one at a time, with one copy of
        each distinct string (~160,000 rows at 100,000 members; dicts of fresh strings are ~75 MB)."""
        strings = {}
        share = strings.setdefault
        rows = self.db.execute(f"select {', '.join(columns)} from virtual_group_members where scan_id = ? order by rowid", [scan_id])
        for row in rows:
            yield tuple(share(v, v) if type(v) is str else v for v in row)

    def own_groups(self):
        """User Groups that runs of this tool created, adopted or added members to, and that were
        not rolled back: {group id: {"name", "members": set of member ids in it because of the tool
        (added, or already there when adopted), "permission_groups": ids its policies got from the
        tool}}."""
        groups = {}
        rows = self.db.query(
            "select a.kind, a.object_id, a.target, a.request, a.inverse from actions a join runs r on r.id = a.run_id "
            f"where r.kind = 'apply' and a.status = '{DONE}' and a.object_id is not null "
            f"and a.kind in {sql_list(kinds_where(lambda k: k.creates_policy or k.adds_members))} "
            "order by r.started_at, a.seq"
        )
        for row in rows:
            group = groups.setdefault(row["object_id"], {"name": row["target"], "members": set(), "permission_groups": set()})
            request = json.loads(row["request"])
            if kind_of(row).adds_members:  # who it put there, and who an adopted group already had
                group["members"].update(request["members"])
                group["members"].update(json.loads(row["inverse"] or "{}").get("members", []))
            else:
                group["permission_groups"].update(pg["id"] for p in request["policies"] for pg in p["permission_groups"])
        return groups

    def own_user_group_ids(self):
        return frozenset(self.own_groups())

    def journal_pending(self, run_id, seq, step, kind, target, method, path, request, inverse):
        """Record a call as pending before it is sent (its own transaction)."""
        row = {
            "run_id": run_id,
            "seq": seq,
            "step": step,
            "kind": kind,
            "target": target,
            "method": method,
            "path": path,
            "request": dumps(request),
            "inverse": dumps(inverse),
            "status": PENDING,
            "started_at": utcnow(),
        }
        # Plain SQL: the journal is written twice per call, and table introspection per write
        # costs more than the write itself.
        with self.transaction() as db:
            db.execute(
                f"insert or replace into actions ({', '.join(row)}) values ({', '.join('?' * len(row))})",
                list(row.values()),
            )

    def journal_update(self, run_id, seq, status, **values):
        for key in ("response", "inverse", "request"):
            if key in values and not isinstance(values[key], str) and values[key] is not None:
                values[key] = dumps(values[key])
        values = {"status": status, "finished_at": utcnow(), **values}
        unknown = values.keys() - self._action_columns
        if unknown:
            raise ValueError(f"actions has no column(s) {sorted(unknown)}")
        # An outcome need not reach the disk before the run goes on: lost in a power cut, the row
        # is pending again and the next run reconciles it with live state. It is durable with
        # the next pending row anyway (one WAL file: its fsync covers every earlier commit), so
        # no call that depends on it is sent first. A pending row is always synced before its call.
        with self._lock, self._synchronous("FULL" if status == PENDING else "NORMAL"), self.transaction() as db:
            db.execute(
                f"update actions set {', '.join(f'{k} = ?' for k in values)} where run_id = ? and seq = ?",
                [*values.values(), run_id, seq],
            )

    @contextmanager
    def _synchronous(self, level):
        """PRAGMA synchronous for the commits inside (the caller holds the lock); FULL again after."""
        if level != "FULL":
            self.db.execute(f"PRAGMA synchronous={level}")
        try:
            yield
        finally:
            if level != "FULL":
                self.db.execute("PRAGMA synchronous=FULL")

    def mark_undone(self, run_id, seq, note):
        """A rollback undid this action (or found nothing to undo): keep its own timestamps."""
        with self.transaction() as db:
            db["actions"].update((run_id, seq), {"status": UNDONE, "undone_at": utcnow(), "undo_note": note})

    def plan_body(self, plan_id):
        # Cast in SQL: json.loads of the bytes would hold a decoded copy beside them while it parses.
        rows = list(self.db.query("select cast(body as text) as body from plans where id = ?", [plan_id]))
        return loads_shared(rows.pop()["body"]) if rows else None

    def recent_calls(self, api):
        """Wall-clock times of the calls earlier commands sent to `api` (see RateLimiter.count_earlier)."""
        rows = list(self.db.query("select times from recent_calls where api = ?", [api]))
        return json.loads(rows[0]["times"]) if rows else []

    def save_recent_calls(self, api, times):
        with self.transaction() as db:
            db["recent_calls"].upsert({"api": api, "times": json.dumps([round(t, 3) for t in sorted(times)])}, pk="api")

    def plan_mode(self, plan_id):
        """api or idp: how the plan was to be carried out (None for a plan not recorded here)."""
        rows = list(self.db.query("select mode from plans where id = ?", [plan_id]))
        return rows[0]["mode"] if rows else None

    def has_plan(self, plan_id):
        """Whether the plan is recorded, without reading its body (tens of MB at 100,000 members)."""
        return bool(list(self.db.query("select 1 from plans where id = ?", [plan_id])))

    def save_rehearsal(self, row):
        with self.transaction() as db:
            db["rehearsals"].insert(row)

    def last_rehearsal(self, plan_id):
        rows = list(self.db.query("select * from rehearsals where plan_id = ? order by at desc limit 1", [plan_id]))
        return rows[0] if rows else None

    def save_verification(self, run_id, counts):
        with self.transaction() as db:
            db["verifications"].insert({"run_id": run_id, "at": utcnow(), "differences": counts["differences"],
                                        "groups": counts["groups"], "member_roles": counts["member_roles"]})

    def last_verification(self, run_id):
        rows = list(self.db.query("select * from verifications where run_id = ? order by at desc limit 1", [run_id]))
        return rows[0] if rows else None

    def last_plan(self, account_id=None, scan_id=None):
        """The newest written plan (of this account, or made from this scan), without its body."""
        where = " and ".join(c for c, v in (("account_id = ?", account_id), ("scan_id = ?", scan_id)) if v is not None) or "1"
        params = [v for v in (account_id, scan_id) if v is not None]
        rows = list(self.db.query(f"select id, created_at, account_id, scan_id, mode, steps from plans where {where} "
                                  "order by created_at desc, rowid desc limit 1", params))
        return rows[0] if rows else None

    # --- the apply lock ------------------------------------------------------------------------

    def acquire_lock(self, name, run_id):
        """Take the named lock or raise, naming the holder. A lock left by a dead process on this
        host (kill -9, power cut) is taken over: the journal, not the lock, carries the state."""
        host = os.uname().nodename
        with self.transaction() as db:
            held = list(db.query("select * from locks where name = ?", [name]))
            if held:
                _refuse_if_held(held[0])
            db["locks"].insert(
                {
                    "name": name,
                    "holder": f"pid {os.getpid()} on {host}",
                    "pid": os.getpid(),
                    "host": host,
                    "run_id": run_id,
                    "acquired_at": utcnow(),
                },
                replace=True,
            )

    def locks(self):
        return list(self.db.query("select * from locks order by acquired_at"))

    def check_lock(self, name):
        """Raise, naming the holder, if a live process holds the named lock (a check before work
        that needs it; acquire_lock checks again)."""
        for lock in self.db.query("select * from locks where name = ?", [name]):
            _refuse_if_held(lock)

    def release_lock(self, name):
        with self.transaction() as db:
            db.execute("delete from locks where name = ? and pid = ?", [name, os.getpid()])

    def lock(self, lock_id):
        """The lock whose id (the run that holds it) is lock_id, or None."""
        rows = list(self.db.query("select * from locks where run_id = ?", [lock_id]))
        return rows[0] if rows else None

    def break_lock(self, lock_id):
        """Remove the lock with this id; refuses while its holder runs on this host."""
        with self.transaction() as db:
            lock = self.lock(lock_id)
            if lock is None:
                raise VgmigrateError(f"no lock with id {lock_id!r} in {self.path}; `vgmigrate status` shows the lock, if any")
            if holder_alive(lock):
                raise VgmigrateError(
                    f"lock {lock_id} is held by {lock['holder']}, which is still running: wait for it to finish "
                    f"(or stop it with Ctrl-C; the journal lets the next run finish the work)"
                )
            db.execute("delete from locks where run_id = ?", [lock_id])
            return lock


def _refuse_if_held(lock):
    if holder_alive(lock) is not False:
        raise VgmigrateError(
            f"the inventory is locked by {lock['holder']} (lock id {lock['run_id']}, since "
            f"{lock['acquired_at']}); wait for it to finish, or if that process is gone run "
            f"`vgmigrate unlock {lock['run_id']}`"
        )


def holder_alive(lock):
    """True or False when the holder's process runs on this host; None when it is on another host
    and cannot be checked from here."""
    if lock["host"] != os.uname().nodename:
        return None
    return _pid_alive(lock["pid"])


class ScanWriter:
    """Stages the rows of one scan in a private temporary database as they are read, so that a scan
    of a large account neither holds them in memory nor keeps the inventory locked while it reads
    the API. save() then records the whole scan in one short transaction: until it completes,
    readers see only the previous scans."""

    def __init__(self, inventory):
        self.inventory = inventory
        # Beside the inventory: it holds the same data, and a crash leaves it where the user looks.
        folder = os.path.dirname(os.path.abspath(inventory.path))
        handle, self.staging_path = tempfile.mkstemp(prefix=".vgmigrate-scan-", suffix=".db", dir=folder)
        os.close(handle)
        self.staging = sqlite3.connect(self.staging_path)
        # Scratch: a crash loses only this scan, which is read again, so nothing here waits for the disk.
        self.staging.execute("PRAGMA journal_mode=OFF")
        self.staging.execute("PRAGMA synchronous=OFF")
        for table, columns in SCAN_TABLES.items():
            self.staging.execute(f"create table [{table}] ({', '.join(f'[{c}]' for c in columns)})")

    def insert(self, table, rows):
        """Stage row dicts (without scan_id) of a scan table; a generator is staged as it yields.

        Rows go in 256 to a statement: each statement gives up the GIL and takes it back, which the
        threads parsing pages may hold, so fewer statements keep the reader from waiting on them."""
        columns = list(SCAN_TABLES[table])
        known = set(columns)
        values = []
        for row in rows:
            if not row.keys() <= known:
                raise ValueError(f"{table} has no column(s) {sorted(row.keys() - known)}")
            values.extend(map(row.get, columns))
            if len(values) == STAGE_BATCH * len(columns):
                self.staging.execute(_insert_sql(table, columns, STAGE_BATCH), values)
                values = []
        if values:
            self.staging.execute(_insert_sql(table, columns, len(values) // len(columns)), values)

    def save(self, scan, findings):
        """Record the scans row, every staged row and the findings in one transaction; returns the
        new scan id. The staged rows are copied by SQLite itself (the staging file attached): at
        100,000 members, ~130 MB that Python would otherwise turn into tuples and back."""
        self.staging.commit()
        db = self.inventory.db
        db.execute("attach database ? as staging", [self.staging_path])  # not allowed inside a transaction
        try:
            with self.inventory.transaction():
                scan_id = db["scans"].insert(scan).last_pk
                for table, columns in SCAN_TABLES.items():
                    names = ", ".join(f"[{c}]" for c in columns)
                    db.execute(f"insert into main.[{table}] ([scan_id], {names}) select ?, {names} from staging.[{table}] order by rowid", [scan_id])
                db["findings"].insert_all(
                    {"scan_id": scan_id, "seq": seq, **finding.as_row()} for seq, finding in enumerate(findings, 1)
                )
        finally:
            db.execute("detach database staging")
        return scan_id

    def close(self):
        self.staging.close()
        os.remove(self.staging_path)


STAGE_BATCH = 256  # rows per staging statement; 256 x 6 columns stays far below SQLite's 32,766 parameters


def _insert_sql(table, columns, rows=1):
    row = f"({', '.join('?' * len(columns))})"
    return f"insert into [{table}] ({', '.join(f'[{c}]' for c in columns)}) values {', '.join([row] * rows)}"


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
