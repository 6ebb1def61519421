"""What Okta's provisioning sends to the Cloudflare SCIM endpoint, over real HTTP, from a worker.

Every job reads the state under its lock, releases it, sends, and writes back under the lock; a job
reads what is true when it runs (not when it was queued), so jobs may run in any order and a job
queued twice does no harm. Jobs of one app run one at a time (`Pusher.lock`). A SCIM answer of
5xx, 429 or a dropped connection is retried by the worker with backoff; anything else is final and
logged to the System Log with outcome FAILURE.
"""

import threading
from datetime import datetime, timezone

import requests

from ..authentik.worker import Retry
from .state import (
    DELETE_APPGROUP, PUSH_MEMBERSHIPS, PUSHED, USER_DEACTIVATE, USER_PUSH, now,
)

SCIM_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
SCIM_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


class Refused(Exception):
    def __init__(self, status, detail):
        super().__init__(detail)
        self.status, self.detail = status, detail


class Pusher:
    def __init__(self, state, worker, timeout=10.0):
        self.state, self.worker, self.timeout = state, worker, timeout
        self.session = requests.Session()
        self.session.trust_env = False
        self.lock = threading.Lock()

    def close(self):
        self.session.close()

    # ---- what the API handlers queue ----------------------------------------------------------------

    def provision(self, app_id, user_id):
        self.worker.send(lambda: self._run(app_id, self._provision, user_id))

    def push_group(self, app_id, mapping_id):
        self.worker.send(lambda: self._run(app_id, self._push_group, mapping_id), uid=("push", app_id, mapping_id))

    def gave_up(self, message, err):
        """The worker's retries of a push are used up: the mapping is in ERROR, saying why."""
        if not (isinstance(message.uid, tuple) and message.uid[0] == "push"):
            return
        _, app_id, mapping_id = message.uid
        with self.state.lock:
            app = self.state.apps.get(app_id)
            mapping = app and app["mappings"].get(mapping_id)
            if mapping and mapping["status"] == "ACTIVE":
                mapping.update(status="ERROR", lastUpdated=now(),
                               errorSummary=f"Failed on {_today()}: Unable to push group to {app['label']}: {err} (gave up after retries)")

    def membership(self, app_id, group_id, user_id):
        self.worker.send(lambda: self._run(app_id, self._membership, group_id, user_id))

    def delete_target(self, app_id, scim_id, label, group_id):
        self.worker.send(lambda: self._run(app_id, self._delete_target, scim_id, label, group_id))

    def after_membership_change(self, group_id, user_id):
        """A user joined or left a group (or the group went): push it to every app that cares."""
        for app in self.state.apps.values():
            mapping = self.state.mapping_for(app, group_id)
            if mapping and mapping["status"] == "ACTIVE" and mapping.get("scim_id"):
                self.membership(app["id"], group_id, user_id)
            self.provision(app["id"], user_id)  # assigned now, or no longer

    # ---- the jobs ------------------------------------------------------------------------------------

    def _run(self, app_id, job, *args):
        with self.lock:
            with self.state.lock:
                app = self.state.apps.get(app_id)
                if app is None or app["connection"]["status"] != "ENABLED":
                    return None
                base, token = app["connection"]["baseUrl"].rstrip("/"), app["connection"]["token"]
            return job(app_id, _Scim(self, base, token), *args)

    def _provision(self, app_id, scim, user_id):
        """Create (or link) the user in Cloudflare when the app is assigned to them, deactivate them
        when no longer."""
        with self.state.lock:
            app = self.state.apps[app_id]
            user = self.state.users.get(user_id)
            assigned = user is not None and user_id in self.state.assigned_users(app)
            record = app["app_users"].get(user_id)
        if assigned and record is None:
            if not app["create_users"]:
                return
            profile = user["profile"]
            try:
                found = scim.call("GET", "/Users", params={"filter": f'userName eq "{profile["login"]}"'})
                resources = found.get("Resources") or []
                if resources:
                    scim_id = resources[0]["id"]
                else:
                    body = {"schemas": [SCIM_USER], "userName": profile["login"], "active": True,
                            "name": {"givenName": profile["firstName"], "familyName": profile["lastName"]},
                            "displayName": f"{profile['firstName']} {profile['lastName']}",
                            "emails": [{"primary": True, "value": profile["email"], "type": "work"}]}
                    scim_id = scim.call("POST", "/Users", body)["id"]
            except Refused as err:
                with self.state.lock:
                    self.state.log(USER_PUSH, "Push new user to external application", _user_targets(app, user),
                                   "FAILURE", f"Automatic provisioning of user {profile['login']} to app {app['label']} failed: {err.detail}")
                return
            with self.state.lock:
                stamp = now()
                scope = "USER" if user_id in app["direct_users"] else "GROUP"
                app["app_users"][user_id] = {"id": user_id, "externalId": scim_id, "created": stamp, "lastUpdated": stamp,
                                             "scope": scope, "status": "PROVISIONED", "syncState": "SYNCHRONIZED", "lastSync": stamp}
                app["scim_ids"][user_id] = scim_id
                self.state.log(USER_PUSH, "Push new user to external application", _user_targets(app, user))
                groups = [g for g, m in _active_mappings(app) if user_id in self.state.groups[g]["members"]]
            for group_id in groups:  # pushed groups it is in: its membership follows its provisioning
                self._membership(app_id, scim, group_id, user_id)
        elif not assigned and record is not None:
            if app["deactivate_users"]:
                body = {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": {"active": False}}]}
                try:
                    scim.call("PATCH", f"/Users/{record['externalId']}", body)
                except Refused as err:
                    if err.status != 404:
                        with self.state.lock:
                            self.state.log(USER_DEACTIVATE, "Deactivate user in external application", _user_targets(app, user),
                                           "FAILURE", err.detail)
                        return
            with self.state.lock:
                app["app_users"].pop(user_id, None)
                if user is not None:
                    self.state.log(USER_DEACTIVATE, "Deactivate user in external application", _user_targets(app, user))

    def _push_group(self, app_id, scim, mapping_id):
        """An ACTIVE mapping's push: create the target group if it has none, then its members."""
        with self.state.lock:
            app = self.state.apps[app_id]
            mapping = app["mappings"].get(mapping_id)
            if mapping is None or mapping["status"] != "ACTIVE":
                return
            group = self.state.groups.get(mapping["sourceGroupId"])
            if group is None:
                return
            name, scim_id = group["profile"]["name"], mapping.get("scim_id")
        if scim_id is None:
            try:
                created = scim.call("POST", "/Groups", {"schemas": [SCIM_GROUP], "displayName": name, "members": []})
            except Refused as err:
                with self.state.lock:
                    mapping["status"] = "ERROR"
                    mapping["errorSummary"] = f"Failed on {_today()}: Unable to push group {name!r} to {app['label']}: {err.detail}"
                    mapping["lastUpdated"] = now()
                    self.state.log(PUSHED, f"Push group {name} to app", _group_targets(app, group, mapping), "FAILURE", err.detail)
                return
            with self.state.lock:
                target = self.state.add_group(name, kind="APP_GROUP", source=app_id)
                target["scim_id"] = created["id"]
                mapping.update(scim_id=created["id"], targetGroupId=target["id"], errorSummary=None, lastUpdated=now())
                self.state.log(PUSHED, f"Push group {name} to app", _group_targets(app, group, mapping))
        self._push_members(app_id, scim, mapping_id)

    def _push_members(self, app_id, scim, mapping_id):
        """Every provisioned member in, every other member out (read from Cloudflare where it lists them)."""
        with self.state.lock:
            app = self.state.apps[app_id]
            mapping = app["mappings"].get(mapping_id)
            if mapping is None or mapping["status"] != "ACTIVE" or not mapping.get("scim_id"):
                return
            group = self.state.groups[mapping["sourceGroupId"]]
            wanted = {app["app_users"][u]["externalId"] for u in group["members"] if u in app["app_users"]}
            scim_id, name = mapping["scim_id"], group["profile"]["name"]
        try:
            listed = {m["value"] for m in scim.call("GET", f"/Groups/{scim_id}").get("members") or []}
            operations = []
            if wanted - listed:
                operations.append({"op": "add", "path": "members", "value": [{"value": v} for v in sorted(wanted - listed)]})
            operations += [{"op": "remove", "path": f'members[value eq "{v}"]'} for v in sorted(listed - wanted)]
            if operations:
                self._rename(scim, scim_id, name)
                scim.call("PATCH", f"/Groups/{scim_id}", {"schemas": [PATCH_OP], "Operations": operations})
        except Refused as err:
            self._membership_failed(app_id, mapping_id, err)
            return
        self._membership_pushed(app_id, mapping_id)

    def _membership(self, app_id, scim, group_id, user_id):
        """One user's membership of one pushed group, as it is now."""
        with self.state.lock:
            app = self.state.apps[app_id]
            mapping = self.state.mapping_for(app, group_id)
            group = self.state.groups.get(group_id)
            record = app["app_users"].get(user_id)
            if not mapping or mapping["status"] != "ACTIVE" or not mapping.get("scim_id") or group is None:
                return  # not pushed: nothing to send
            inside = user_id in group["members"]
            # Only a provisioned user is added; one who left is removed even if deprovisioned meanwhile.
            value = record["externalId"] if record else (None if inside else app["scim_ids"].get(user_id))
            if value is None:
                return
            scim_id, mapping_id, name = mapping["scim_id"], mapping["id"], group["profile"]["name"]
            email = self.state.users[user_id]["profile"]["login"] if user_id in self.state.users else None
        if inside:
            operation = {"op": "add", "path": "members", "value": [{"value": value, "display": email}]}
        else:
            operation = {"op": "remove", "path": f'members[value eq "{value}"]'}
        try:
            self._rename(scim, scim_id, name)
            scim.call("PATCH", f"/Groups/{scim_id}", {"schemas": [PATCH_OP], "Operations": [operation]})
        except Refused as err:
            self._membership_failed(app_id, mapping_id, err)
            return
        self._membership_pushed(app_id, mapping_id)

    @staticmethod
    def _rename(scim, scim_id, name):
        """Okta restates the group's name before each membership update (its SCIM reference)."""
        scim.call("PATCH", f"/Groups/{scim_id}", {"schemas": [PATCH_OP], "Operations": [
            {"op": "replace", "value": {"id": scim_id, "displayName": name}}]})

    def _membership_pushed(self, app_id, mapping_id):
        with self.state.lock:
            app = self.state.apps[app_id]
            mapping = app["mappings"].get(mapping_id)
            if mapping is None:
                return
            mapping["lastPush"] = now()
            group = self.state.groups.get(mapping["sourceGroupId"])
            if group is not None:
                self.state.log(PUSH_MEMBERSHIPS, f"Push group memberships of {group['profile']['name']} to app",
                               _group_targets(app, group, mapping))

    def _membership_failed(self, app_id, mapping_id, err):
        with self.state.lock:
            app = self.state.apps[app_id]
            mapping = app["mappings"].get(mapping_id)
            if mapping is None:
                return
            group = self.state.groups.get(mapping["sourceGroupId"])
            mapping["status"] = "ERROR"
            mapping["errorSummary"] = f"Failed on {_today()}: Unable to update group memberships in {app['label']}: {err.detail}"
            if group is not None:
                self.state.log(PUSH_MEMBERSHIPS, f"Push group memberships of {group['profile']['name']} to app",
                               _group_targets(app, group, mapping), "FAILURE", err.detail)

    def _delete_target(self, app_id, scim, scim_id, label, group_id):
        try:
            scim.call("DELETE", f"/Groups/{scim_id}")
            outcome, reason = "SUCCESS", None
        except Refused as err:
            outcome, reason = ("SUCCESS", None) if err.status == 404 else ("FAILURE", err.detail)
        with self.state.lock:
            app = self.state.apps[app_id]
            targets = [{"id": app_id, "type": "AppInstance", "alternateId": app["label"], "displayName": app["label"]},
                       {"id": group_id, "type": "UserGroup", "alternateId": label, "displayName": label}]
            self.state.log(DELETE_APPGROUP, f"Delete group {label} in app", targets, outcome, reason)


class _Scim:
    def __init__(self, pusher, base, token):
        self.pusher, self.base, self.token = pusher, base, token

    def call(self, method, path, body=None, params=None):
        try:
            response = self.pusher.session.request(
                method, self.base + path, json=body, params=params, timeout=self.pusher.timeout,
                headers={"Authorization": f"Bearer {self.token}", "Accept": "application/scim+json",
                         "User-Agent": "Okta SCIM Client 1.0.0"})
        except requests.RequestException as err:
            raise Retry(f"{type(err).__name__} talking to {self.base}") from None
        if response.status_code == 429 or response.status_code >= 500:
            raise Retry(f"HTTP {response.status_code}")
        if response.status_code >= 400:
            raise Refused(response.status_code, _detail(response))
        return response.json() if response.content else {}


def _detail(response):
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    if isinstance(body, dict):
        if body.get("detail"):
            return f"{body['detail']} (HTTP {response.status_code})"
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            return f"{errors[0].get('message')} (HTTP {response.status_code})"
    return f"HTTP {response.status_code}"


def _active_mappings(app):
    return [(m["sourceGroupId"], m) for m in app["mappings"].values() if m["status"] == "ACTIVE" and m.get("scim_id")]


def _today():
    return datetime.now(timezone.utc).strftime("%B %d, %Y %H:%M:%S UTC")


def _user_targets(app, user):
    return [{"id": app["id"], "type": "AppInstance", "alternateId": app["label"], "displayName": app["label"]},
            {"id": user["id"], "type": "User", "alternateId": user["profile"]["login"],
             "displayName": f"{user['profile']['firstName']} {user['profile']['lastName']}"}]


def _group_targets(app, group, mapping):
    name = group["profile"]["name"]
    return [{"id": app["id"], "type": "AppInstance", "alternateId": app["label"], "displayName": app["label"]},
            {"id": group["id"], "type": "UserGroup", "alternateId": name, "displayName": name},
            {"id": mapping["id"], "type": "GroupPushMapping", "alternateId": mapping["id"], "displayName": name}]
