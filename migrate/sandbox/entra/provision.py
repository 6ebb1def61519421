"""What Entra's provisioning service sends to Cloudflare's SCIM endpoint (the job's Tenant URL),
over real HTTP, from the worker: after the Graph request that caused it has been answered.

Default attribute mappings (Entra's SCIM template): users match on userName = userPrincipalName
and send emails[type eq "work"] = mail, externalId = mailNickname; groups match on displayName
and send displayName, externalId = objectId, members. Every outcome is a provisioning log entry;
nothing here raises into the Graph API.
"""

import threading

import requests

from ..authentik.worker import Retry
from .state import execution, now

SCIM_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
SCIM_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


class Failed(Exception):
    def __init__(self, status, detail):
        super().__init__(detail)
        self.status, self.detail = status, detail


class Provisioner:
    def __init__(self, state, worker):
        self.state, self.worker = state, worker
        self.session = requests.Session()
        self.lock = threading.Lock()  # one export at a time, as one job runs one cycle at a time

    def close(self):
        self.session.close()

    # ---- SCIM transport ------------------------------------------------------------------------

    def _send(self, target, method, path, body=None, params=None):
        try:
            response = self.session.request(method, target["url"].rstrip("/") + path, json=body, params=params, timeout=10,
                                            headers={"Authorization": f"Bearer {target['token']}", "Accept": "application/scim+json"})
        except requests.RequestException as err:
            raise Failed(None, f"{type(err).__name__} talking to the Tenant URL") from None
        if response.status_code >= 400:
            raise Failed(response.status_code, f"HTTP {response.status_code}: {response.text[:200]}")
        return response.json() if response.content else {}

    # ---- the objects ---------------------------------------------------------------------------

    def _user(self, sp_id, target, user):
        key = (sp_id, user["id"])
        with self.state.lock:
            linked = self.state.user_links.get(key)
        if linked:
            return linked
        upn = user["userPrincipalName"]
        found = self._send(target, "GET", "/Users", params={"filter": f'userName eq "{upn}"'}).get("Resources") or []
        if found:
            scim_id = found[0]["id"]
        else:
            body = {"schemas": [SCIM_USER], "userName": upn, "active": True, "displayName": user["displayName"],
                    "emails": [{"primary": True, "type": "work", "value": user.get("mail") or upn}],
                    "externalId": user["mailNickname"]}
            scim_id = self._send(target, "POST", "/Users", body)["id"]
            with self.state.lock:
                self.state.log(sp_id, "create", "success", user=user, target=scim_id)
        with self.state.lock:
            self.state.user_links[key] = scim_id
        return scim_id

    def _group(self, sp_id, target, group):
        """The linked Cloudflare group: matched by displayName, else created (with no members)."""
        key = (sp_id, group["id"])
        with self.state.lock:
            link = self.state.group_links.get(key)
        if link:
            return link, False
        name = group["displayName"].replace('"', '\\"')
        found = self._send(target, "GET", "/Groups", params={"filter": f'displayName eq "{name}"'}).get("Resources") or []
        created = not found
        if found:
            scim_id = found[0]["id"]
        else:
            body = {"schemas": [SCIM_GROUP], "displayName": group["displayName"], "externalId": group["id"], "members": []}
            scim_id = self._send(target, "POST", "/Groups", body)["id"]
        with self.state.lock:
            link = self.state.group_links.setdefault(key, {"scim_id": scim_id, "members": set()})
        return link, created

    def export_group(self, sp_id, group_id, only=None, initiator="system"):
        """Bring one group to Cloudflare: create or match it, then add the members it has and
        remove those it lost (`only`: just these user ids, as an on-demand request names them;
        removals only in a cycle). One log entry for the group; Failed on a refused request."""
        with self.state.lock:
            job = self.state.jobs[sp_id]
            target = dict(job["_target"])
            group = self.state.groups.get(group_id)
            if group is None:
                return
            group = dict(group, members=list(group["members"]))
            users = {u: dict(self.state.users[u]) for u in group["members"] if u in self.state.users}
        try:
            link, created = self._group(sp_id, target, group)
            wanted = set(users) if only is None else set(users) & set(only)
            add = sorted(u for u in wanted if u not in link["members"])
            remove = [] if only is not None else sorted(link["members"] - set(users))
            ops = []
            if add:
                ops.append({"op": "Add", "path": "members", "value": [{"value": self._user(sp_id, target, users[u])} for u in add]})
            with self.state.lock:
                gone = {u: self.state.user_links.get((sp_id, u)) for u in remove}
            if any(gone.values()):
                ops.append({"op": "Remove", "path": "members", "value": [{"value": s} for s in gone.values() if s]})
            if ops:
                self._send(target, "PATCH", f"/Groups/{link['scim_id']}", {"schemas": [PATCH_OP], "Operations": ops})
            with self.state.lock:
                link["members"] = (link["members"] | set(add)) - set(remove)
                if created or ops or initiator != "system":
                    self.state.log(sp_id, "create" if created else "update", "success", group=group, target=link["scim_id"],
                                   initiator=initiator)
        except Failed as err:
            with self.state.lock:
                self.state.log(sp_id, "update", "failure", group=group, error=(f"SCIM{err.status or 'Error'}", err.detail),
                               initiator=initiator)
                if err.status in (401, 403):
                    self.state.quarantine(sp_id, "CredentialsInvalid", "The Tenant URL or Secret Token is not valid: " + err.detail)
            raise

    def delete_group(self, sp_id, group_id, group):
        with self.state.lock:
            link = self.state.group_links.get((sp_id, group_id))
            target = dict(self.state.jobs[sp_id]["_target"])
        if link is None:
            return
        try:
            self._send(target, "DELETE", f"/Groups/{link['scim_id']}")
            status, error = "success", None
        except Failed as err:
            if err.status not in (400, 403, 404):
                raise
            status, error = ("success", None) if err.status == 404 else ("failure", (f"SCIM{err.status}", err.detail))
        with self.state.lock:
            self.state.group_links.pop((sp_id, group_id), None)
            self.state.log(sp_id, "delete", status, group=group, target=link["scim_id"], error=error)

    # ---- what queues work ----------------------------------------------------------------------

    def on_demand(self, sp_id, group_id, member_ids):
        """provisionOnDemand: the group and the named members, after the request was answered."""

        def job():
            with self.lock:
                try:
                    self.export_group(sp_id, group_id, only=member_ids, initiator="on demand")
                except Failed as err:
                    if err.status is None or err.status >= 500 or err.status == 429:
                        raise Retry() from None

        return self.worker.send(job)

    def cycle(self, sp_id):
        """One incremental cycle: every assigned group exported, every linked group that left the
        scope (unassigned or deleted) deleted in Cloudflare. Skipped while quarantined or paused."""
        with self.state.lock:
            job = self.state.jobs.get(sp_id)
            if job is None or job["status"]["code"] != "Active" or job["schedule"]["state"] != "Active":
                return
            scope = self.state.assigned_groups(sp_id)
            leaving = [(g, (self.state.groups.get(g) or {"id": g, "displayName": g}))
                       for (sp, g) in list(self.state.group_links) if sp == sp_id and g not in scope]
        began = now()
        failed = None
        with self.lock:
            for group_id in scope:
                try:
                    self.export_group(sp_id, group_id)
                except Failed as err:
                    failed = err
            for group_id, group in leaving:
                try:
                    self.delete_group(sp_id, group_id, group)
                except Failed as err:
                    failed = err
        with self.state.lock:
            status = job["status"]
            if status["code"] == "Quarantine":
                return
            status["lastExecution"] = execution(began, "Failed" if failed else "Succeeded",
                                                *(("EscrowsExceeded", failed.detail) if failed else ()))
            if not failed:
                status["lastSuccessfulExecution"] = status["lastExecution"]
