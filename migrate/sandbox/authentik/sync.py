"""Outgoing SCIM sync: what authentik's SCIM provider sends to the Cloudflare SCIM endpoint, over
real HTTP. Every run is recorded as a task whose logs say what failed; nothing here raises.

Pushes run one at a time (`Pusher.lock`, like the provider's advisory lock) and never hold the
state lock while talking to Cloudflare: the state is read, the lock released, the request sent.
"""

import copy
import json
import threading
from datetime import datetime, timezone

import requests

from .worker import Retry
from .state import (
    DELETE_ACTOR, DIRECT_ACTOR, FULL_SYNC_ACTOR, GROUP_MODEL, M2M_ACTOR, OBJECT_SYNC_ACTOR, USER_MODEL,
)

SCIM_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
SCIM_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
NO_PROVIDER = "No provider found. Is it assigned to an application?"
DRY_RUN = "Dropping mutating request due to dry run"
LOGGER = "authentik.providers.scim.tasks"
PAGE_WAIT = 60.0  # seconds a full sync waits for each of its page tasks (authentik: sync_page_timeout)


class RemoteError(Exception):
    """A SCIM request that failed: kind is not_found | exists | bad | transient."""

    def __init__(self, kind, status, detail):
        super().__init__(detail)
        self.kind, self.status, self.detail = kind, status, detail


class DryRunRejected(Exception):
    def __init__(self, method, url, body):
        super().__init__(f"{method} {url}")
        self.method, self.url, self.body = method, url, body


class TaskLog:
    def __init__(self):
        self.logs = []

    def add(self, level, event, **attributes):
        self.logs.append({"timestamp": datetime.now(timezone.utc).isoformat(), "log_level": level, "logger": LOGGER,
                          "event": event, "attributes": json.loads(json.dumps(attributes, default=str))})

    def info(self, event, **attributes):
        self.add("info", event, **attributes)

    def warning(self, event, **attributes):
        self.add("warning", event, **attributes)

    def error(self, event, **attributes):
        self.add("error", event, **attributes)


class Client:
    """One provider's connection: base URL, token, the remote's ServiceProviderConfig, dry run."""

    def __init__(self, pusher, provider, dry_run):
        self.session = pusher.session
        self.timeout = pusher.timeout
        self.base = provider["url"].rstrip("/")
        self.token = provider["token"]
        self.dry_run = dry_run
        self.compatibility_mode = provider["compatibility_mode"]
        config = pusher.config_for(self)
        self.patch = bool((config.get("patch") or {}).get("supported"))
        self.filter = bool((config.get("filter") or {}).get("supported"))
        self.max_operations = int((config.get("bulk") or {}).get("maxOperations") or 0)

    def request(self, method, path, body=None, params=None):
        url = f"{self.base}{path}"
        if self.dry_run and method != "GET":
            raise DryRunRejected(method, url, body)
        try:
            response = self.session.request(
                method, url, json=body, params=params, timeout=self.timeout,
                headers={"Authorization": f"Bearer {self.token}", "Accept": "application/scim+json"},
            )
        except requests.RequestException as err:
            raise RemoteError("transient", None, f"{type(err).__name__} talking to {self.base}") from None
        if response.status_code >= 400:
            # authentik's SCIM client: 404 and 409 have their own exceptions; every other status
            # raises SCIMRequestException, a TransientSyncException (retried by signal tasks).
            kind = {404: "not_found", 409: "exists"}.get(response.status_code, "transient")
            raise RemoteError(kind, response.status_code, _detail(response))
        if response.status_code == 204 or not response.content:
            return {}
        try:
            return response.json()
        except ValueError:
            raise RemoteError("bad", response.status_code, "SCIM response is not JSON") from None


def _detail(response):
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}: {response.text[:200]}"
    if isinstance(body, dict):
        if body.get("detail"):
            return f"HTTP {response.status_code}: {body['detail']}"
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            return f"HTTP {response.status_code}: {errors[0].get('message')}"
    return f"HTTP {response.status_code}: {response.text[:200]}"


def _merge(into, data):
    """Deep merge with list union, as authentik compares a payload with the stored attributes."""
    for key, value in data.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        elif isinstance(value, list) and isinstance(into.get(key), list):
            into[key] = into[key] + [v for v in value if v not in into[key]]
        else:
            into[key] = copy.deepcopy(value)
    return into


def changed(payload, attributes):
    known = copy.deepcopy(attributes or {})
    merged = _merge(copy.deepcopy(known), payload)
    return json.dumps(merged, sort_keys=True) != json.dumps(known, sort_keys=True)


def user_payload(user):
    given, _, family = (user["name"] or "").partition(" ")
    name = {"formatted": user["name"]}
    if given:
        name["givenName"] = given
    if family:
        name["familyName"] = family
    payload = {"schemas": [SCIM_USER], "userName": user["username"], "name": name, "active": user["is_active"]}
    if user["name"]:
        payload["displayName"] = user["name"]
    if user["email"]:
        payload["emails"] = [{"value": user["email"], "type": "other", "primary": True}]
    payload["externalId"] = user["uid"]
    return payload


class Pusher:
    """What authentik's worker does for one server: every entry point queues messages on the
    `worker` and returns at once (the API request that caused them answers first), except
    `sync_object`, which waits for its message like the API does, at most `object_wait` seconds."""

    def __init__(self, state, worker, timeout=10.0, object_wait=10.0):
        self.state = state
        self.worker = worker
        self.timeout = timeout
        self.object_wait = object_wait
        self.session = requests.Session()
        self.lock = threading.RLock()  # the provider's advisory lock, held by a full sync
        self.running = set()  # providers with a full sync under way (sync status is_running)
        self._configs = {}
        self._config_lock = threading.Lock()

    def close(self):
        self.session.close()

    def config_for(self, client):
        """ServiceProviderConfig, read once per (url, token); a failed read falls back to "nothing
        supported" for this run only, as authentik does."""
        key = (client.base, client.token)
        with self._config_lock:
            if key in self._configs:
                return self._configs[key]
        try:
            config = client.request("GET", "/ServiceProviderConfig")
        except RemoteError:
            return {}
        with self._config_lock:
            self._configs[key] = config if isinstance(config, dict) else {}
            return self._configs[key]

    # ---- entry points: each queues one message per attached provider -------------------------------

    def full_sync(self, provider_pk):
        """The schedule's `scim_sync`: queued; its page tasks are queued by it in turn."""
        return self.worker.send(lambda: self._full_sync(provider_pk), uid=f"{_name(self.state, provider_pk)}:full")

    def direct(self, model, pk):
        """post_save: write the object to every attached provider that has it in scope."""
        kind = "group" if model == GROUP_MODEL else "user"
        for provider_pk in self._attached():
            uid = f"{_name(self.state, provider_pk)}:{kind}:{pk}:direct"
            self._send_signal(provider_pk, DIRECT_ACTOR, uid, lambda task, p=provider_pk: self._direct(model, pk, p, task))

    def m2m(self, group_uuid, action, user_pks):
        """A group's members changed: PATCH add/remove of the remote ids of the linked users."""
        if not user_pks:
            return
        users = set(user_pks)
        for provider_pk in self._attached():
            uid = f"{_name(self.state, provider_pk)}:group:{group_uuid}:m2m"
            self._send_signal(provider_pk, M2M_ACTOR, uid, lambda task, p=provider_pk: self._m2m(group_uuid, action, users, p, task))

    def deleted(self, model, mappings, label):
        """The object is gone locally; its links (provider pk, scim id) were removed: DELETE remotely."""
        for provider_pk, scim_id in mappings:
            uid = f"{_name(self.state, provider_pk)}:{scim_id}:delete"
            self._send_signal(provider_pk, DELETE_ACTOR, uid, lambda task, p=provider_pk, i=scim_id: self._delete(model, i, label, p, task))

    def sync_object(self, provider_pk, model, object_id, override_dry_run=False):
        """The API's single-object sync: a page task for that one object, waited for at most
        `object_wait` seconds. None when it has not finished by then (the API answers 500; the
        task still runs later)."""
        task = TaskLog()
        kind = "group" if model == GROUP_MODEL else "user"
        uid = f"{_name(self.state, provider_pk)}:{kind}:{object_id}:manual"

        def job():
            with self.state.lock:
                provider = self._provider(provider_pk, task)
                ids = []
                if provider is not None:
                    if model == GROUP_MODEL:
                        ids = [object_id] if self.state.group_in_scope(provider_pk, object_id) else []
                    else:
                        pk = int(object_id) if str(object_id).isdigit() else None
                        ids = [pk] if pk is not None and self.state.user_in_scope(provider_pk, pk) else []
            if provider is not None:
                client = Client(self, provider, provider["dry_run"] and not override_dry_run)
                self._page(client, provider_pk, model, ids, 1, task)
            with self.state.lock:
                self.state.record_task(provider_pk, OBJECT_SYNC_ACTOR, uid, task.logs)
            return task.logs

        message = self.worker.send(job, uid)
        if not message.done.wait(self.object_wait):
            return None
        return message.result if not message.failed else task.logs

    # ---- what the messages do ----------------------------------------------------------------------

    def _attached(self):
        with self.state.lock:
            return self.state.attached_providers()

    def _send_signal(self, provider_pk, actor, uid, work):
        """Queue a signal task: one task record from the start ("queued"), `work(log)` once per
        attempt. A transient failure is retried (authentik: `raise Retry()`); the record stays
        "queued" between attempts and ends "done", or "rejected" once the retries are used up."""
        with self.state.lock:
            if provider_pk not in self.state.providers:
                return
            record = self.state.record_task(provider_pk, actor, uid, [], task_state="queued")
        attempts = []

        def job():
            log = TaskLog()
            attempts.append(1)
            try:
                work(log)
                final = "done"
            except RemoteError as exc:
                log.warning(f"Task failed, retrying: {exc.detail}", status=exc.status)
                final = "rejected" if len(attempts) > self.worker.max_retries else None
            with self.state.lock:
                self.state.update_task(record, log.logs, final, retries=len(attempts) - 1)
            if final is None:
                raise Retry()

        self.worker.send(job, uid)

    def _record(self, provider_pk, actor, uid, task, schedule=False):
        with self.state.lock:
            if provider_pk in self.state.providers:
                self.state.record_task(provider_pk, actor, uid, task.logs, schedule=schedule)

    def _full_sync(self, provider_pk):
        task = TaskLog()
        with self.state.lock:
            provider = self._provider(provider_pk, task)
        if provider is None:
            return self._record(provider_pk, FULL_SYNC_ACTOR, f"{_name(self.state, provider_pk)}:full", task, schedule=True)
        task.info("Starting full provider sync")
        if not self.lock.acquire(blocking=False):
            task.info("Synchronization is already running. Skipping.")
            return self._record(provider_pk, FULL_SYNC_ACTOR, f"{provider['name']}:full", task, schedule=True)
        self.running.add(provider_pk)
        try:
            with self.state.lock:
                users = [pk for pk in sorted(self.state.users) if self.state.user_in_scope(provider_pk, pk)]
                groups = [g for g in self.state.groups if self.state.group_in_scope(provider_pk, g)]
            size = max(1, provider["sync_page_size"])
            for model, ids in ((USER_MODEL, users), (GROUP_MODEL, groups)):
                pages = [ids[i:i + size] for i in range(0, len(ids), size)]
                messages = [self.worker.send(self._page_task(provider_pk, model, page, number), delay=0)
                            for number, page in enumerate(pages, start=1)]
                for message in messages:  # users first, then groups, as authentik waits on each group
                    message.done.wait(PAGE_WAIT)
            if self.state.version.cleanup:
                self._cleanup(provider_pk, provider)
        finally:
            self.running.discard(provider_pk)
            self.lock.release()
        self._record(provider_pk, FULL_SYNC_ACTOR, f"{provider['name']}:full", task, schedule=True)

    def _page_task(self, provider_pk, model, ids, number):
        kind = "group" if model == GROUP_MODEL else "user"

        def job():
            task = TaskLog()
            with self.state.lock:
                provider = self._provider(provider_pk, task)
            uid = f"{_name(self.state, provider_pk)}:{kind}:{number}"
            if provider is not None:
                client = Client(self, provider, provider["dry_run"])
                try:
                    self._page(client, provider_pk, model, ids, number, task)
                except RemoteError as exc:  # a 409 authentik cannot adopt fails the page task
                    task.error(f"Task failed: ObjectExistsSyncException: {exc.detail}", status=exc.status)
                    self._record(provider_pk, OBJECT_SYNC_ACTOR, uid, task, schedule=True)
                    raise Retry() from None
            self._record(provider_pk, OBJECT_SYNC_ACTOR, uid, task, schedule=True)

        return job

    def _page(self, client, provider_pk, model, ids, number, task):
        task.info(f"Syncing page {number} of {'groups' if model == GROUP_MODEL else 'users'}")
        for pk in ids:
            self._write(client, provider_pk, model, pk, task, raise_exists=True)

    def _cleanup(self, provider_pk, provider):
        """2026.2.2+: a full sync deletes the links of users and groups now out of scope, and the
        remote objects with them (`DELETE /Groups/{id}`, `DELETE /Users/{id}`)."""
        with self.state.lock:
            gone = []
            for kind, table, in_scope in (("group", self.state.group_links, self.state.group_in_scope),
                                          ("user", self.state.user_links, self.state.user_in_scope)):
                for link_id, link in list(table.items()):
                    if link["provider"] == provider_pk and not in_scope(provider_pk, link[kind]):
                        del table[link_id]
                        gone.append((kind, link["scim_id"], link[kind]))
        for kind, scim_id, obj in gone:
            model = GROUP_MODEL if kind == "group" else USER_MODEL
            uid = f"{provider['name']}:{scim_id}:delete"
            self._send_signal(provider_pk, DELETE_ACTOR, uid, lambda task, m=model, i=scim_id, o=obj: self._delete(m, i, str(o), provider_pk, task))

    def _direct(self, model, pk, provider_pk, task):
        with self.state.lock:
            provider = self._provider(provider_pk, task)
            if provider is None:
                return
            in_scope = (self.state.group_in_scope(provider_pk, pk) if model == GROUP_MODEL
                        else self.state.user_in_scope(provider_pk, pk))
        if in_scope:
            self._write(Client(self, provider, provider["dry_run"]), provider_pk, model, pk, task, signal=True)

    def _m2m(self, group_uuid, action, user_pks, provider_pk, task):
        with self.state.lock:
            provider = self._provider(provider_pk, task)
            if provider is None or not self.state.group_in_scope(provider_pk, group_uuid):
                return
            group = self.state.groups[group_uuid]
            label = f"Group {group['name']}"
            link = self.state.link_of("group", provider_pk, group_uuid)
            scim_ids = self.state.user_scim_ids(provider_pk, user_pks)
        client = Client(self, provider, provider["dry_run"])
        if link is None:
            task.warning(f"Could not sync membership of {label}: the group does not exist remotely yet", group=group_uuid)
        elif scim_ids:
            op = "add" if action == "add" else "remove"
            try:
                self._patch_members(client, link["scim_id"], [(op, i) for i in scim_ids])
            except DryRunRejected as exc:
                task.info(DRY_RUN, obj=label, method=exc.method, url=exc.url, body=exc.body)
            except RemoteError as exc:
                if exc.kind == "not_found" and op == "remove":
                    return
                raise

    def _delete(self, model, scim_id, label, provider_pk, task):
        path = "/Groups/" if model == GROUP_MODEL else "/Users/"
        with self.state.lock:
            provider = self._provider(provider_pk, task)
        if provider is None:
            return
        client = Client(self, provider, provider["dry_run"])
        try:
            client.request("DELETE", path + scim_id)
        except DryRunRejected as exc:
            task.info(DRY_RUN, obj=label, method=exc.method, url=exc.url, body=exc.body)
        except RemoteError as exc:
            if exc.kind != "not_found":
                raise
            task.info("Object not found in remote provider", obj=label, scim_id=scim_id)

    # ---- internals -------------------------------------------------------------------------------

    def _provider(self, provider_pk, task):
        """A copy of the provider if it exists and is attached, else a task warning and None."""
        if provider_pk not in self.state.providers or not self.state.attached(provider_pk):
            task.warning(NO_PROVIDER)
            return None
        return copy.deepcopy(self.state.providers[provider_pk])

    def _write(self, client, provider_pk, model, pk, task, signal=False, raise_exists=False):
        """Write one object. A page task logs a failure and goes on; a signal task (`signal`) lets a
        transient one raise, to be retried. A 409 on a group authentik cannot adopt (before 2026.2)
        raises either way: authentik's ObjectExistsSyncException fails the task."""
        with self.state.lock:
            obj = self.state.groups.get(pk) if model == GROUP_MODEL else self.state.users.get(pk)
            if obj is None:
                return
            label = f"Group {obj['name']}" if model == GROUP_MODEL else obj["username"]
        try:
            if model == GROUP_MODEL:
                self._write_group(client, provider_pk, pk)
            else:
                self._write_user(client, provider_pk, pk)
        except DryRunRejected as exc:
            task.info(DRY_RUN, obj=label, method=exc.method, url=exc.url, body=exc.body)
        except RemoteError as exc:
            if signal or (exc.kind == "exists" and raise_exists):
                raise
            task.warning(_failure(label, exc), obj=label, status=exc.status)

    # groups

    def _write_group(self, client, provider_pk, group_uuid):
        with self.state.lock:
            link = copy.deepcopy(self.state.link_of("group", provider_pk, group_uuid))
        if link is None:
            return self._create_group(client, provider_pk, group_uuid)
        try:
            return self._update_group(client, provider_pk, group_uuid, link)
        except RemoteError as exc:
            if exc.kind != "not_found":
                raise
        # Gone remotely: forget the link and create the group again.
        with self.state.lock:
            self.state.group_links.pop(link["id"], None)
        return self._create_group(client, provider_pk, group_uuid)

    def _group_payload(self, client, provider_pk, group_uuid):
        with self.state.lock:
            group = self.state.groups[group_uuid]
            payload = {"schemas": [SCIM_GROUP], "displayName": group["name"], "externalId": group["pk"]}
            users = set(group["users"])
            if not client.patch:
                members = self.state.user_scim_ids(provider_pk, users)
                if members:
                    payload["members"] = [{"value": m} for m in members]
        return payload, users

    def _create_group(self, client, provider_pk, group_uuid):
        payload, users = self._group_payload(client, provider_pk, group_uuid)
        adopt = self.state.version.group_adoption
        remote = _create_or_adopt(client, "/Groups", payload, f'displayName eq "{payload["displayName"]}"', adopt)
        with self.state.lock:
            if group_uuid not in self.state.groups:
                return
            link = self.state.add_link("group", provider_pk, group_uuid, remote["id"], remote)
            scim_ids = self.state.user_scim_ids(provider_pk, users)
        self._patch_members(client, link["scim_id"], [("add", i) for i in scim_ids])

    def _update_group(self, client, provider_pk, group_uuid, link):
        payload, _ = self._group_payload(client, provider_pk, group_uuid)
        payload["id"] = link["scim_id"]
        if changed(payload, link["attributes"]):
            path = f"/Groups/{link['scim_id']}"
            if client.patch:
                if client.compatibility_mode == "aws":
                    ops = [{"op": "replace", "path": a, "value": payload[a]} for a in ("displayName", "externalId")]
                    client.request("PATCH", path, {"schemas": [PATCH_OP], "Operations": ops})
                else:
                    client.request("PATCH", path, {"Operations": [{"op": "replace", "value": payload}]})
            else:
                client.request("PUT", path, payload)
        self._compare_members(client, provider_pk, group_uuid)

    def _compare_members(self, client, provider_pk, group_uuid):
        """Reconcile membership from GET /Groups/{id}. A remote that lists no `members` at all
        (Cloudflare's system groups) gets no adds: authentik only adds next to a listed array."""
        with self.state.lock:
            link = self.state.link_of("group", provider_pk, group_uuid)
            if link is None or group_uuid not in self.state.groups:
                return
            scim_id = link["scim_id"]
            should = self.state.user_scim_ids(provider_pk, self.state.groups[group_uuid]["users"])
        current = client.request("GET", f"/Groups/{scim_id}")
        members = current.get("members")
        present = [m.get("value") for m in members or [] if isinstance(m, dict)]
        remove = [v for v in present if v not in should]
        add = [v for v in should if v not in present] if members is not None else []
        self._patch_members(client, scim_id, [("add", v) for v in add] + [("remove", v) for v in remove])

    def _patch_members(self, client, scim_id, changes):
        if not changes:
            return
        ops = [{"op": op, "path": "members", "value": [{"value": value}]} for op, value in changes]
        size = client.max_operations if client.max_operations > 0 else len(ops)
        for start in range(0, len(ops), size):
            client.request("PATCH", f"/Groups/{scim_id}", {"schemas": [PATCH_OP], "Operations": ops[start:start + size]})

    # users

    def _write_user(self, client, provider_pk, user_pk):
        with self.state.lock:
            user = copy.deepcopy(self.state.users[user_pk])
            link = copy.deepcopy(self.state.link_of("user", provider_pk, user_pk))
        payload = user_payload(user)
        if link is not None:
            if not changed(dict(payload, id=link["scim_id"]), link["attributes"]):
                return
            try:
                client.request("PUT", f"/Users/{link['scim_id']}", dict(payload, id=link["scim_id"]))
                return
            except RemoteError as exc:
                if exc.kind != "not_found":
                    raise
            with self.state.lock:
                self.state.user_links.pop(link["id"], None)
        remote = _create_or_adopt(client, "/Users", payload, f'userName eq "{user["username"]}"')
        with self.state.lock:
            if user_pk in self.state.users:
                self.state.add_link("user", provider_pk, user_pk, remote["id"], remote)


def _failure(label, exc):
    if exc.kind == "transient":
        return f"Failed to sync {label} due to transient error: {exc.detail}"
    return f"Failed to sync {label} due to error: {exc.detail}"


def _name(state, provider_pk):
    provider = state.providers.get(provider_pk)
    return provider["name"] if provider else str(provider_pk)


def _create_or_adopt(client, path, payload, filter, adopt=True):
    """POST the object; on a 409, when `adopt` and the remote can filter, the same-named remote
    object it finds instead (authentik adopts it); its remote id either way."""
    try:
        remote = client.request("POST", path, payload)
    except RemoteError as exc:
        if exc.kind != "exists" or not adopt or not client.filter:
            raise
        found = client.request("GET", path, params={"filter": filter}).get("Resources") or []
        if not found:
            raise
        return found[0]
    if not remote.get("id"):
        raise RemoteError("bad", None, "SCIM Response with missing or invalid `id`")
    return remote
