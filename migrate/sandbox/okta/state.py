"""The Okta org's objects as the emulator keeps them, and their rendering in Okta's shapes.

Users, groups (with ordered members), one or more apps (each with its provisioning connection,
group assignments, app users and group push mappings), and the System Log. Every method is called
under `State.lock`; rendering builds fresh dicts, so answers never share state.
"""

import itertools
import json
import random
import threading
import uuid
from datetime import datetime, timezone

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

USER_GROUP = "okta:user_group"
APP_GROUP = "okta:app_group"
PUSH_MEMBERSHIPS = "application.provision.group_push.push_memberships"
PUSHED = "application.provision.group_push.pushed"
DELETE_APPGROUP = "application.provision.group_push.delete_appgroup"
MAPPING_CHANGED = "application.provision.group_push.updated"
USER_PUSH = "application.provision.user.push"
USER_DEACTIVATE = "application.provision.user.deactivate"


def now():
    stamp = datetime.now(timezone.utc)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


class State:
    def __init__(self, org_url_fn, random_seed=0):
        self.lock = threading.RLock()
        self._random = random.Random(random_seed)
        self._org_url = org_url_fn  # the served base URL, known once listening
        self.users = {}
        self.groups = {}
        self.apps = {}
        self.logs = []
        self._log_n = itertools.count(1)
        self.admin = None

    @property
    def org_url(self):
        return self._org_url()

    def new_id(self, prefix):
        """Okta ids: 20 characters, a 3-character prefix by kind (00u user, 00g group, 0oa app)."""
        return prefix + "".join(self._random.choice(_ALPHABET) for _ in range(17))

    # ---- users and groups --------------------------------------------------------------------------

    def add_user(self, email, first, last, status="ACTIVE"):
        stamp = now()
        user = {"id": self.new_id("00u"), "status": status, "created": stamp, "activated": stamp, "statusChanged": stamp,
                "lastLogin": None, "lastUpdated": stamp, "passwordChanged": stamp, "type": {"id": "oty1default0000000000"},
                "profile": {"firstName": first, "lastName": last, "email": email, "login": email}}
        self.users[user["id"]] = user
        return user

    def add_group(self, name, description=None, members=(), kind="OKTA_GROUP", source=None):
        stamp = now()
        group = {"id": self.new_id("00g"), "created": stamp, "lastUpdated": stamp, "lastMembershipUpdated": stamp,
                 "objectClass": [APP_GROUP if kind == "APP_GROUP" else USER_GROUP], "type": kind,
                 "profile": {"name": name, "description": description}, "members": dict.fromkeys(members),
                 "source": source}
        self.groups[group["id"]] = group
        return group

    def okta_groups(self):
        return [g for g in self.groups.values() if g["type"] == "OKTA_GROUP"]

    def group_named(self, name):
        key = name.casefold()
        return next((g for g in self.okta_groups() if g["profile"]["name"].casefold() == key), None)

    # ---- apps --------------------------------------------------------------------------------------

    def add_app(self, label, name, base_url, token, provisioning=True, group_push=True):
        stamp = now()
        features = ["PUSH_NEW_USERS", "PUSH_PROFILE_UPDATES", "PUSH_USER_DEACTIVATION", "REACTIVATE_USERS"]
        if group_push:
            features.insert(0, "GROUP_PUSH")
        app = {"id": self.new_id("0oa"), "name": name, "label": label, "status": "ACTIVE", "created": stamp,
               "lastUpdated": stamp, "signOnMode": "AUTO_LOGIN", "features": features if provisioning else [],
               "connection": {"baseUrl": base_url, "token": token, "status": "ENABLED" if provisioning else "DISABLED"},
               "create_users": provisioning, "deactivate_users": provisioning,
               "assignments": {}, "app_users": {}, "mappings": {}, "direct_users": set(),
               "scim_ids": {}}  # every user it ever provisioned -> their SCIM id (a removal still reaches them)
        self.apps[app["id"]] = app
        return app

    def assigned_users(self, app):
        """Okta ids of the users the app is assigned to: directly, or through an assigned group."""
        out = set(app["direct_users"])
        for group_id in app["assignments"]:
            group = self.groups.get(group_id)
            if group:
                out.update(group["members"])
        return out

    def mapping_for(self, app, group_id):
        return next((m for m in app["mappings"].values() if m["sourceGroupId"] == group_id), None)

    # ---- the System Log ----------------------------------------------------------------------------

    def log(self, event_type, message, targets, outcome="SUCCESS", reason=None, severity="INFO"):
        event = {
            "uuid": str(uuid.UUID(int=self._random.getrandbits(128), version=4)),
            "published": now(),
            "eventType": event_type,
            "version": "0",
            "severity": severity if outcome == "SUCCESS" else "WARN",
            "legacyEventType": None,
            "displayMessage": message,
            "actor": {"id": "0oaOktaProvisioning00", "type": "PublicClientApp", "alternateId": "Okta provisioning",
                      "displayName": "Okta Provisioning", "detailEntry": None},
            "outcome": {"result": outcome, "reason": reason},
            "target": [dict(t, detailEntry=None) for t in targets],
            "transaction": {"type": "JOB", "id": uuid.UUID(int=self._random.getrandbits(128)).hex[:20], "detail": {}},
            "debugContext": {"debugData": {}},
            "n": next(self._log_n),
        }
        self.logs.append(event)
        return event


# ---- rendering -------------------------------------------------------------------------------------


def render_user(state, user):
    base = state.org_url
    body = {k: v for k, v in user.items()}
    body["credentials"] = {"provider": {"type": "OKTA", "name": "OKTA"}}
    body["_links"] = {"self": {"href": f"{base}/api/v1/users/{user['id']}"}}
    return body


def render_group(state, group):
    base = state.org_url
    body = {k: group[k] for k in ("id", "created", "lastUpdated", "lastMembershipUpdated", "objectClass", "type")}
    profile = {"name": group["profile"]["name"]}
    if group["profile"].get("description") is not None:
        profile["description"] = group["profile"]["description"]
    body["profile"] = profile
    links = {"logo": [{"name": "medium", "href": f"{base}/assets/img/logos/groups/okta-medium.png", "type": "image/png"}],
             "users": {"href": f"{base}/api/v1/groups/{group['id']}/users"},
             "apps": {"href": f"{base}/api/v1/groups/{group['id']}/apps"}}
    if group["type"] == "APP_GROUP" and group.get("source"):
        links["source"] = {"href": f"{base}/api/v1/apps/{group['source']}"}
    body["_links"] = links
    return body


def render_app(state, app):
    base = state.org_url
    return {
        "id": app["id"], "name": app["name"], "label": app["label"], "status": app["status"], "created": app["created"],
        "lastUpdated": app["lastUpdated"], "signOnMode": app["signOnMode"], "features": list(app["features"]),
        "accessibility": {"selfService": False},
        "visibility": {"autoSubmitToolbar": False, "hide": {"iOS": True, "web": True}, "appLinks": {"login": True}},
        "settings": {"app": {}, "notifications": {"vpn": {"network": {"connection": "DISABLED"}}}},
        "_links": {"self": {"href": f"{base}/api/v1/apps/{app['id']}"},
                   "groups": {"href": f"{base}/api/v1/apps/{app['id']}/groups"},
                   "users": {"href": f"{base}/api/v1/apps/{app['id']}/users"}},
    }


def render_connection(state, app):
    connection = app["connection"]
    body = {"authScheme": "TOKEN", "status": connection["status"], "profile": {"authScheme": "TOKEN"},
            "_links": {"self": {"href": f"{state.org_url}/api/v1/apps/{app['id']}/connections/default"}}}
    if connection["status"] == "ENABLED":
        body["baseUrl"] = connection["baseUrl"]
    return body


def render_features(state, app):
    enabled = "ENABLED" if app["create_users"] else "DISABLED"
    return [{
        "name": "USER_PROVISIONING", "status": "ENABLED" if app["connection"]["status"] == "ENABLED" else "DISABLED",
        "description": "User provisioning settings from Okta to a downstream application",
        "capabilities": {
            "create": {"lifecycleCreate": {"status": enabled}},
            "update": {"lifecycleDeactivate": {"status": "ENABLED" if app["deactivate_users"] else "DISABLED"},
                       "profile": {"status": "ENABLED"}, "password": {"status": "DISABLED", "seed": "RANDOM", "change": "KEEP_EXISTING"}},
        },
        "_links": {"self": {"href": f"{state.org_url}/api/v1/apps/{app['id']}/features/USER_PROVISIONING"}},
    }]


def render_assignment(state, app, group_id):
    record = app["assignments"][group_id]
    base = state.org_url
    return {"id": group_id, "lastUpdated": record["lastUpdated"], "priority": record["priority"], "profile": {},
            "_links": {"app": {"href": f"{base}/api/v1/apps/{app['id']}"}, "group": {"href": f"{base}/api/v1/groups/{group_id}"}}}


def render_app_user(state, app, record, expand_user=False):
    user = state.users[record["id"]]
    body = {"id": record["id"], "externalId": record.get("externalId"), "created": record["created"],
            "lastUpdated": record["lastUpdated"], "scope": record["scope"], "status": record["status"],
            "statusChanged": record["lastUpdated"], "passwordChanged": None, "syncState": record["syncState"],
            "lastSync": record.get("lastSync"), "credentials": {"userName": user["profile"]["login"]},
            "profile": {"email": user["profile"]["email"], "givenName": user["profile"]["firstName"],
                        "familyName": user["profile"]["lastName"]},
            "_links": {"app": {"href": f"{state.org_url}/api/v1/apps/{app['id']}"},
                       "user": {"href": f"{state.org_url}/api/v1/users/{record['id']}"}}}
    if body["externalId"] is None:
        del body["externalId"]
    if body["lastSync"] is None:
        del body["lastSync"]
    if expand_user:
        body["_embedded"] = {"user": render_user(state, user)}
    return body


def render_mapping(state, app, mapping):
    base = state.org_url
    body = {k: mapping[k] for k in ("id", "created", "lastUpdated", "sourceGroupId", "status")}
    if mapping.get("targetGroupId"):
        body["targetGroupId"] = mapping["targetGroupId"]
    if mapping.get("lastPush"):
        body["lastPush"] = mapping["lastPush"]
    if mapping.get("errorSummary"):
        body["errorSummary"] = mapping["errorSummary"]
    links = {"app": {"href": f"{base}/api/v1/apps/{app['id']}"}, "sourceGroup": {"href": f"{base}/api/v1/groups/{mapping['sourceGroupId']}"}}
    if mapping.get("targetGroupId"):
        links["targetGroup"] = {"href": f"{base}/api/v1/groups/{mapping['targetGroupId']}"}
    body["_links"] = links
    return body


def render_log(event):
    """Okta's schema types no System Log field as nullable, so an absent value is left out."""
    return _compact({k: v for k, v in event.items() if k != "n"})


def _compact(value):
    if isinstance(value, dict):
        return {k: _compact(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_compact(v) for v in value]
    return value


def description_json(value):
    """A group description as JSON, for the seed's readers (tests)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
