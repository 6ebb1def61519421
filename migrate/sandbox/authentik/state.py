"""The emulated authentik database: users, groups, SCIM providers, applications, the SCIM link
tables, schedules and tasks; plus how each object renders for the server's version."""

import copy
import hashlib
import random
import threading
import uuid
from datetime import datetime, timezone

SCIM_APP_LABEL = "authentik_providers_scim"
SCIM_MODEL = "scimprovider"
FULL_SYNC_ACTOR = "authentik.providers.scim.tasks.scim_sync"
OBJECT_SYNC_ACTOR = "authentik.providers.scim.tasks.scim_sync_objects"
DIRECT_ACTOR = "authentik.providers.scim.tasks.scim_sync_direct"
M2M_ACTOR = "authentik.providers.scim.tasks.scim_sync_m2m"
DELETE_ACTOR = "authentik.providers.scim.tasks.scim_sync_delete"
GROUP_MODEL = "authentik.core.models.Group"
USER_MODEL = "authentik.core.models.User"
USER_TYPES = ("internal", "external", "service_account", "internal_service_account")
AUTH_MODES = ("token", "oauth", "oauth_interactive")
COMPATIBILITY_MODES = ("default", "aws", "slack", "sfdc", "webex", "vcenter")
SCHEDULE_APP_LABEL, SCHEDULE_MODEL = "authentik_tasks_schedules", "schedule"
STATUS_RANK = {"done": 0, "info": 1, "warning": 2, "error": 3}


def now():
    return datetime.now(timezone.utc).isoformat()


class Version:
    """The emulated server version; features switch on at the release that introduced them."""

    def __init__(self, text):
        parts = str(text).split(".")
        try:
            numbers = tuple(int(p) for p in parts[:3])
        except ValueError:
            raise ValueError(f"authentik version must look like 2026.5.6, got {text!r}") from None
        if len(numbers) < 2:
            raise ValueError(f"authentik version must look like 2026.5.6, got {text!r}")
        self.text = str(text)
        self.tuple = numbers + (0,) * (3 - len(numbers))

    def at_least(self, text):
        return self.tuple >= Version(text).tuple

    # Feature switches (API-NOTES version table).
    @property
    def tasks_api(self):
        return self.at_least("2025.8")

    @property
    def group_filters(self):
        return self.at_least("2026.2")

    @property
    def token_write_only(self):
        return self.at_least("2026.8")

    @property
    def multi_parents(self):
        return self.at_least("2025.12")

    @property
    def akql(self):
        return self.at_least("2026.5")

    @property
    def group_adoption(self):
        """A group that already exists remotely (409) is linked instead of failing the task."""
        return self.at_least("2026.2")

    @property
    def cleanup(self):
        """Every full sync deletes remote users and groups now out of scope (tag 2026.2.2)."""
        return self.at_least("2026.2.2")


class State:
    """In-memory authentik objects. Every read and write of the tables holds `lock`."""

    def __init__(self, version="2026.5.6", random_seed=0):
        self.lock = threading.RLock()
        self.version = Version(version)
        self._rng = random.Random(f"authentik-sandbox-{random_seed}")
        self.users = {}  # pk (int) -> user
        self.groups = {}  # uuid -> group
        self.providers = {}  # pk (int) -> SCIM provider
        self.applications = {}  # slug -> application
        self.group_links = {}  # id (uuid) -> SCIMProviderGroup
        self.user_links = {}  # id (uuid) -> SCIMProviderUser
        self.schedules = {}  # id (uuid) -> schedule
        self.tasks = []  # oldest first
        self.mappings = {}  # uuid -> SCIM property mapping (read-only defaults)
        # Users no application binding allows (the sandbox's stand-in for policy bindings).
        self.unbound_users = set()
        self._next_user_pk = 1
        self._next_num_pk = 1000
        self._next_provider_pk = 1
        self.flow_uuid = self.new_uuid()  # the default authorization/invalidation flow
        self.owner_pk = None  # the token's user (akadmin)
        for managed, name, expression in (
            ("goauthentik.io/providers/scim/user", "authentik default SCIM Mapping: User", 'return {"userName": request.user.username, ...}'),
            ("goauthentik.io/providers/scim/group", "authentik default SCIM Mapping: Group", 'return {\n    "displayName": group.name,\n}'),
        ):
            pm = self.new_uuid()
            self.mappings[pm] = {"pk": pm, "managed": managed, "name": name, "expression": expression}

    # ---- ids ------------------------------------------------------------------------------------

    def new_uuid(self):
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def mapping_id(self, managed):
        return next(pk for pk, m in self.mappings.items() if m["managed"] == managed)

    # ---- users and groups -----------------------------------------------------------------------

    def add_user(self, username, name="", email="", user_type="internal", is_active=True, attributes=None, path="users"):
        pk = self._next_user_pk
        self._next_user_pk += 1
        stamp = now()
        user = {
            "pk": pk, "username": username, "name": name, "email": email, "is_active": is_active,
            "type": user_type, "path": path, "attributes": dict(attributes or {}), "uuid": self.new_uuid(),
            "uid": hashlib.sha256(f"vgmigrate-sandbox-{pk}-{username}".encode()).hexdigest(),
            "date_joined": stamp, "last_updated": stamp, "password_change_date": stamp, "last_login": None,
            "is_superuser": False,
        }
        self.users[pk] = user
        return user

    def add_group(self, name, users=(), attributes=None, is_superuser=False):
        group = {
            "pk": self.new_uuid(), "num_pk": self._next_num_pk, "name": name, "is_superuser": is_superuser,
            "users": set(users), "attributes": dict(attributes or {}), "parents": [], "roles": [],
        }
        self._next_num_pk += 1
        self.groups[group["pk"]] = group
        return group

    def group_by_name(self, name):
        return next((g for g in self.groups.values() if g["name"] == name), None)

    def groups_of_user(self, pk):
        return [g for g in self.groups.values() if pk in g["users"]]

    # ---- providers and applications -------------------------------------------------------------

    def add_provider(self, name, url, token="", **fields):
        pk = self._next_provider_pk
        self._next_provider_pk += 1
        provider = {
            "pk": pk, "name": name, "url": url, "token": token,
            "property_mappings": [self.mapping_id("goauthentik.io/providers/scim/user")],
            "property_mappings_group": [self.mapping_id("goauthentik.io/providers/scim/group")],
            "verify_certificates": True, "auth_mode": "token", "auth_oauth": None, "auth_oauth_params": {},
            "compatibility_mode": "default", "service_provider_config_cache_timeout": "hours=1",
            "exclude_users_service_account": False, "sync_page_size": 100, "sync_page_timeout": "minutes=30",
            "group_filters": [], "filter_group": None, "dry_run": False, "discovery_enabled": True,
        }
        provider.update(fields)
        self.providers[pk] = provider
        schedule_id = self.new_uuid()
        self.schedules[schedule_id] = {
            "id": schedule_id, "identifier": f"{FULL_SYNC_ACTOR}:{pk}", "uid": _slug(name),
            "actor_name": FULL_SYNC_ACTOR, "rel_obj_app_label": SCIM_APP_LABEL, "rel_obj_model": SCIM_MODEL,
            "rel_obj_id": str(pk), "crontab": f"{pk % 60} */4 * * *", "paused": False,
            "next_run": now(), "description": None,
        }
        return provider

    def delete_provider(self, pk):
        self.providers.pop(pk)
        for table in (self.group_links, self.user_links):
            for link_id in [i for i, link in table.items() if link["provider"] == pk]:
                del table[link_id]
        for sid in [i for i, s in self.schedules.items() if s["rel_obj_id"] == str(pk)]:
            del self.schedules[sid]
        for app in self.applications.values():
            if app["provider"] == pk:
                app["provider"] = None
            if pk in app["backchannel_providers"]:
                app["backchannel_providers"].remove(pk)

    def add_application(self, name, slug, provider=None, backchannel_providers=(), **fields):
        app = {
            "pk": self.new_uuid(), "name": name, "slug": slug, "provider": provider, "backchannel_providers": [],
            "open_in_new_tab": False, "meta_launch_url": "", "meta_icon": "", "meta_description": "",
            "meta_publisher": "", "policy_engine_mode": "any", "group": "", "meta_hide": False,
        }
        app.update(fields)
        self.applications[slug] = app
        self.set_backchannel(app, backchannel_providers)
        return app

    def set_backchannel(self, app, providers):
        # A provider is the backchannel of at most one application (a foreign key on the provider).
        for other in self.applications.values():
            if other is not app:
                other["backchannel_providers"] = [p for p in other["backchannel_providers"] if p not in providers]
        app["backchannel_providers"] = list(dict.fromkeys(providers))

    def backchannel_app(self, pk):
        return next((a for a in self.applications.values() if pk in a["backchannel_providers"]), None)

    def main_app(self, pk):
        return next((a for a in self.applications.values() if a["provider"] == pk), None)

    def attached(self, pk):
        """authentik syncs a provider only when an application uses it (backchannel or main)."""
        return pk in self.providers and (self.backchannel_app(pk) or self.main_app(pk)) is not None

    def attached_providers(self):
        return [pk for pk in self.providers if self.attached(pk)]

    # ---- sync scope ------------------------------------------------------------------------------

    def group_in_scope(self, provider_pk, group_uuid):
        provider = self.providers[provider_pk]
        if group_uuid not in self.groups:
            return False
        if self.version.group_filters and provider["group_filters"]:
            return group_uuid in provider["group_filters"]
        return True  # empty group_filters (or before 2026.2): every group

    def user_in_scope(self, provider_pk, user_pk):
        user = self.users.get(user_pk)
        if user is None or user_pk in self.unbound_users:
            return False
        if self.providers[provider_pk]["exclude_users_service_account"] and user["type"] in ("service_account", "internal_service_account"):
            return False
        return True

    # ---- SCIM links ------------------------------------------------------------------------------

    def add_link(self, kind, provider_pk, obj, scim_id, attributes=None):
        table = self.group_links if kind == "group" else self.user_links
        link_id = self.new_uuid()
        table[link_id] = {"id": link_id, "scim_id": scim_id, kind: obj, "provider": provider_pk, "attributes": copy.deepcopy(attributes or {})}
        return table[link_id]

    def link_of(self, kind, provider_pk, obj):
        table = self.group_links if kind == "group" else self.user_links
        return next((link for link in table.values() if link["provider"] == provider_pk and link[kind] == obj), None)

    def user_scim_ids(self, provider_pk, user_pks):
        """Remote ids of the users that already have a link, in user pk order."""
        ids = []
        for pk in sorted(user_pks):
            link = self.link_of("user", provider_pk, pk)
            if link:
                ids.append(link["scim_id"])
        return ids

    # ---- tasks -----------------------------------------------------------------------------------

    def schedule_of(self, provider_pk):
        return next((s for s in self.schedules.values() if s["rel_obj_id"] == str(provider_pk)), None)

    def record_task(self, provider_pk, actor, uid, logs, failed=False, schedule=False, task_state=None):
        """A task (finished, unless `task_state` says otherwise). Its rel_obj is the provider, or
        (`schedule`: the full sync and its page tasks) the provider's schedule."""
        status = "rejected" if failed else task_state if task_state and not logs else _worst(logs)
        rel = (SCIM_APP_LABEL, SCIM_MODEL, str(provider_pk) if provider_pk is not None else None)
        sched = self.schedule_of(provider_pk) if schedule else None
        if sched is not None:
            rel = (SCHEDULE_APP_LABEL, SCHEDULE_MODEL, sched["id"])
        task = {
            "message_id": self.new_uuid(), "queue_name": "default", "actor_name": actor,
            "state": task_state or ("rejected" if failed else "done"),
            "mtime": now(), "retries": 0, "eta": None, "rel_obj_app_label": rel[0], "rel_obj_model": rel[1],
            "rel_obj_id": rel[2], "uid": uid, "logs": logs,
            "previous_logs": [], "aggregated_status": status, "description": None,
        }
        self.tasks.append(task)
        return task

    def update_task(self, task, logs, task_state, retries):
        """Another attempt of a queued task: its logs added; task_state None while it waits for a retry."""
        task["logs"] = task["logs"] + logs
        task["state"] = task_state or "queued"
        task["retries"] = retries
        task["mtime"] = now()
        task["aggregated_status"] = _worst(task["logs"])

    def provider_tasks(self, pk, actor=None):
        """Tasks about the provider: its own (signals, object syncs) and its schedule's (full syncs, pages)."""
        sched = self.schedule_of(pk)
        ids = {str(pk), sched["id"] if sched else None}
        return [t for t in self.tasks if t["rel_obj_id"] in ids and (actor is None or t["actor_name"] == actor)]

    def schedule_tasks(self, pk):
        sched = self.schedule_of(pk)
        return [t for t in self.tasks if sched is not None and t["rel_obj_id"] == sched["id"]]

    # ---- rendering -------------------------------------------------------------------------------

    def partial_user(self, user):
        return {
            "pk": user["pk"], "username": user["username"], "name": user["name"], "is_active": user["is_active"],
            "last_login": user["last_login"], "email": user["email"], "attributes": copy.deepcopy(user["attributes"]),
            "uid": user["uid"],
        }

    def partial_group(self, group):
        return {"pk": group["pk"], "num_pk": group["num_pk"], "name": group["name"], "is_superuser": group["is_superuser"],
                "attributes": copy.deepcopy(group["attributes"])}

    def related_group(self, group):
        return {"pk": group["pk"], "name": group["name"], "is_superuser": group["is_superuser"],
                "attributes": copy.deepcopy(group["attributes"]), "group_uuid": group["pk"]}

    def render_group(self, group, include_users=True, include_children=False, include_parents=False, include_inherited_roles=False):
        out = {"pk": group["pk"], "num_pk": group["num_pk"], "name": group["name"], "is_superuser": group["is_superuser"]}
        if self.version.multi_parents:
            out["parents"] = list(group["parents"])
            out["parents_obj"] = [self.related_group(self.groups[p]) for p in group["parents"] if p in self.groups] if include_parents else None
        else:
            parent = group["parents"][0] if group["parents"] else None
            out["parent"] = parent
            out["parent_name"] = self.groups[parent]["name"] if parent in self.groups else None
        users = sorted(group["users"])
        out["users"] = users
        out["users_obj"] = [self.partial_user(self.users[pk]) for pk in users] if include_users else None
        out["attributes"] = copy.deepcopy(group["attributes"])
        out["roles"] = list(group["roles"])
        out["roles_obj"] = []
        if self.version.group_filters:  # inherited roles arrived with 2026.2
            out["inherited_roles_obj"] = [] if include_inherited_roles else None
        children = [g for g in self.groups.values() if group["pk"] in g["parents"]]
        out["children"] = [g["pk"] for g in children]
        out["children_obj"] = [self.related_group(g) for g in children] if include_children else None
        return out

    def render_user(self, user, include_groups=True):
        groups = self.groups_of_user(user["pk"])
        return {
            "pk": user["pk"], "username": user["username"], "name": user["name"], "is_active": user["is_active"],
            "last_login": user["last_login"], "date_joined": user["date_joined"], "is_superuser": user["is_superuser"],
            "groups": [g["pk"] for g in groups],
            "groups_obj": [self.partial_group(g) for g in groups] if include_groups else None,
            "roles": [], "roles_obj": [], "email": user["email"],
            "avatar": "/static/dist/assets/images/user_default.png", "attributes": copy.deepcopy(user["attributes"]),
            "uid": user["uid"], "path": user["path"], "type": user["type"], "uuid": user["uuid"],
            "password_change_date": user["password_change_date"], "last_updated": user["last_updated"],
        }

    def render_user_self(self, user):
        return {
            "pk": user["pk"], "username": user["username"], "name": user["name"], "is_active": user["is_active"],
            "is_superuser": user["is_superuser"],
            "groups": [{"name": g["name"], "pk": g["pk"]} for g in self.groups_of_user(user["pk"])], "roles": [],
            "email": user["email"], "avatar": "/static/dist/assets/images/user_default.png", "uid": user["uid"],
            "settings": {}, "type": user["type"], "system_permissions": [],
        }

    def render_provider(self, provider):
        app = self.backchannel_app(provider["pk"])
        out = {
            "pk": provider["pk"], "name": provider["name"],
            "property_mappings": list(provider["property_mappings"]),
            "property_mappings_group": list(provider["property_mappings_group"]),
            "component": "ak-provider-scim-form",
            "assigned_backchannel_application_slug": app["slug"] if app else None,
            "assigned_backchannel_application_name": app["name"] if app else None,
            "verbose_name": "SCIM Provider", "verbose_name_plural": "SCIM Providers",
            "meta_model_name": "authentik_providers_scim.scimprovider",
            "url": provider["url"], "verify_certificates": provider["verify_certificates"],
        }
        if not self.version.token_write_only:
            out["token"] = provider["token"]
        out.update({
            "auth_mode": provider["auth_mode"], "auth_oauth": provider["auth_oauth"],
            "auth_oauth_params": copy.deepcopy(provider["auth_oauth_params"]),
            "auth_oauth_token_last_updated": None, "auth_oauth_token_expires": None,
            "auth_oauth_url_callback": None, "auth_oauth_url_start": None,
            "compatibility_mode": provider["compatibility_mode"],
            "service_provider_config_cache_timeout": provider["service_provider_config_cache_timeout"],
            "exclude_users_service_account": provider["exclude_users_service_account"],
            "sync_page_size": provider["sync_page_size"], "sync_page_timeout": provider["sync_page_timeout"],
        })
        if self.version.group_filters:
            out["group_filters"] = list(provider["group_filters"])
        else:
            out["filter_group"] = provider["filter_group"]
        out["dry_run"] = provider["dry_run"]
        if self.version.token_write_only:
            out["discovery_enabled"] = provider["discovery_enabled"]
        return out

    def render_plain_provider(self, provider):
        """The generic Provider shape embedded in applications."""
        main = self.main_app(provider["pk"])
        back = self.backchannel_app(provider["pk"])
        return {
            "pk": provider["pk"], "name": provider["name"], "authentication_flow": None,
            "authorization_flow": self.flow_uuid, "invalidation_flow": self.flow_uuid,
            "property_mappings": list(provider["property_mappings"]), "component": "ak-provider-scim-form",
            "assigned_application_slug": main["slug"] if main else None,
            "assigned_application_name": main["name"] if main else None,
            "assigned_backchannel_application_slug": back["slug"] if back else None,
            "assigned_backchannel_application_name": back["name"] if back else None,
            "verbose_name": "SCIM Provider", "verbose_name_plural": "SCIM Providers",
            "meta_model_name": "authentik_providers_scim.scimprovider",
        }

    def render_application(self, app):
        provider = self.providers.get(app["provider"]) if app["provider"] is not None else None
        out = {key: copy.deepcopy(value) for key, value in app.items()}
        out["provider_obj"] = self.render_plain_provider(provider) if provider else None
        out["backchannel_providers_obj"] = [self.render_plain_provider(self.providers[p]) for p in app["backchannel_providers"] if p in self.providers]
        out["launch_url"] = app["meta_launch_url"] or None
        out["meta_icon_url"] = None
        out["meta_icon_themed_urls"] = None
        return out

    def render_link(self, kind, link):
        out = {"id": link["id"], "scim_id": link["scim_id"], kind: link[kind]}
        if kind == "group":
            group = self.groups.get(link["group"])
            out["group_obj"] = self.partial_group(group) if group else None
        else:
            user = self.users.get(link["user"])
            out["user_obj"] = self.partial_user(user) if user else None
        out["provider"] = link["provider"]
        out["attributes"] = copy.deepcopy(link["attributes"])
        return out

    def render_schedule(self, schedule):
        out = dict(schedule)
        tasks = self.provider_tasks(schedule["rel_obj_id"], schedule["actor_name"])
        out["last_task_status"] = tasks[-1]["aggregated_status"] if tasks else None
        return out

    def render_mapping(self, mapping):
        return {**mapping, "component": "ak-property-mapping-provider-scim-form", "verbose_name": "SCIM Provider Mapping",
                "verbose_name_plural": "SCIM Provider Mappings", "meta_model_name": "authentik_providers_scim.scimmapping"}


def _worst(logs):
    worst = max((STATUS_RANK.get(_level_status(e["log_level"]), 0) for e in logs), default=0)
    return next(s for s, r in STATUS_RANK.items() if r == worst)


def _level_status(level):
    if level in ("critical", "exception", "error"):
        return "error"
    if level in ("warn", "warning"):
        return "warning"
    if level == "info":
        return "info"
    return "done"


def _slug(name):
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")
