"""A small client for a real Authentik server, written for the lane from Authentik's own API
(not the tool's client: the lane seeds and inspects the server independently of what it tests)."""

import time

import requests

GROUP_MODEL = "authentik.core.models.Group"
USER_MODEL = "authentik.core.models.User"
SCIM_SYNC_ACTOR = "authentik.providers.scim.tasks.scim_sync"
# Everything the lane makes carries this prefix (names, slugs), so a reused server is cleaned by it.
PREFIX = "vglane"


class AuthentikError(Exception):
    pass


class Authentik:
    def __init__(self, url, token, timeout=30):
        self.base = url.rstrip("/")
        if not self.base.endswith("/api/v3"):
            self.base += "/api/v3"
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"
        self.timeout = timeout

    def close(self):
        self.session.close()

    def call(self, method, path, json=None, params=None, ok=(200, 201, 204)):
        response = self.session.request(method, self.base + path, json=json, params=params, timeout=self.timeout)
        if response.status_code not in ok:
            raise AuthentikError(f"{method} {path} -> {response.status_code}: {response.text[:300]}")
        return response.json() if response.content else None

    def pages(self, api_path, **params):
        page = 1
        while True:
            body = self.call("GET", api_path, params={**params, "page": page, "page_size": 100})
            yield from body["results"]
            page = body["pagination"]["next"]
            if not page:
                return

    # ---- objects -----------------------------------------------------------------------------

    def version(self):
        return self.call("GET", "/admin/version/")["version_current"]

    def create_user(self, username, name, email):
        return self.call("POST", "/core/users/", {"username": username, "name": name, "email": email, "is_active": True, "path": PREFIX})

    def create_group(self, name, users=()):
        return self.call("POST", "/core/groups/", {"name": name, "users": list(users)})

    def group_by_name(self, name):
        return next((g for g in self.pages("/core/groups/", name=name, include_users="true") if g["name"] == name), None)

    def groups(self):
        return list(self.pages("/core/groups/", include_users="true"))

    def add_user(self, group_uuid, user_pk):
        self.call("POST", f"/core/groups/{group_uuid}/add_user/", {"pk": user_pk})

    def remove_user(self, group_uuid, user_pk):
        self.call("POST", f"/core/groups/{group_uuid}/remove_user/", {"pk": user_pk})

    def rename_group(self, group_uuid, name):
        return self.call("PATCH", f"/core/groups/{group_uuid}/", {"name": name})

    def delete_group(self, group_uuid):
        self.call("DELETE", f"/core/groups/{group_uuid}/")

    def scim_mapping(self, managed):
        found = list(self.pages("/propertymappings/provider/scim/", managed=managed))
        if not found:
            raise AuthentikError(f"no SCIM property mapping managed as {managed}")
        return found[0]["pk"]

    def create_provider(self, name, url, token, filter_group=None):
        body = {
            "name": name, "url": url, "token": token, "auth_mode": "token", "verify_certificates": False,
            "property_mappings": [self.scim_mapping("goauthentik.io/providers/scim/user")],
            "property_mappings_group": [self.scim_mapping("goauthentik.io/providers/scim/group")],
            "exclude_users_service_account": True,
            # A full sync waits for its page tasks up to pages x this x 1.5 (default 30 min): short,
            # so a page that dies cannot hold one of the two worker processes for long.
            "sync_page_timeout": "seconds=60",
        }
        if filter_group:
            body["filter_group"] = filter_group
        return self.call("POST", "/providers/scim/", body)

    def create_application(self, name, slug, backchannel_providers):
        return self.call("POST", "/core/applications/", {"name": name, "slug": slug, "backchannel_providers": list(backchannel_providers)})

    def group_links(self, provider_pk):
        return list(self.pages("/providers/scim_groups/", provider__id=provider_pk))

    def user_links(self, provider_pk):
        return list(self.pages("/providers/scim_users/", provider__id=provider_pk))

    def full_sync(self, provider_pk):
        """What the provider's "Run" button does in this version: send its schedule now."""
        schedules = list(self.pages("/tasks/schedules/", rel_obj_id=provider_pk, rel_obj_content_type__model="scimprovider",
                                    actor_name=SCIM_SYNC_ACTOR))
        if not schedules:
            raise AuthentikError(f"no sync schedule for provider {provider_pk}")
        self.call("POST", f"/tasks/schedules/{schedules[0]['id']}/send/")

    def sync_object(self, provider_pk, model, object_id):
        """(status, body): the real server answers 500 when its worker does not finish in 10 s."""
        response = self.session.post(f"{self.base}/providers/scim/{provider_pk}/sync/object/", timeout=self.timeout,
                                     json={"sync_object_model": model, "sync_object_id": str(object_id), "override_dry_run": False})
        return response.status_code, (response.json() if response.content and response.headers.get("content-type", "").startswith("application/json") else None)

    def tasks(self, provider_pk):
        return list(self.pages("/tasks/tasks/", rel_obj_id=provider_pk, rel_obj_content_type__model="scimprovider", ordering="-mtime"))

    # ---- a clean slate -------------------------------------------------------------------------

    def remove_lane_objects(self):
        """Delete what earlier lane runs made: applications and providers first (so deleting the
        users and groups pushes nothing anywhere), then groups and users."""
        for app in self.pages("/core/applications/", search=PREFIX):
            if app["slug"].startswith(PREFIX):
                self.call("DELETE", f"/core/applications/{app['slug']}/", ok=(204, 404))
        for provider in self.pages("/providers/scim/"):
            if provider["name"].startswith(PREFIX):
                # Deleted mid-sync, a provider's page tasks die and its full sync waits for them
                # until its timeout, holding a worker process (findings note): let it finish first.
                wait_for(f"provider {provider['name']!r} to finish its sync", lambda: not self.call(
                    "GET", f"/providers/scim/{provider['pk']}/sync/status/").get("is_running"), timeout=150)
                self.call("DELETE", f"/providers/scim/{provider['pk']}/", ok=(204, 404))
        for group in self.pages("/core/groups/", include_users="false"):
            if not group["is_superuser"] and group["name"] != "authentik Admins":
                self.call("DELETE", f"/core/groups/{group['pk']}/", ok=(204, 404))
        for user in self.pages("/core/users/", path=PREFIX):
            self.call("DELETE", f"/core/users/{user['pk']}/", ok=(204, 404))


def wait_for(what, check, timeout=90.0, interval=0.25):
    """Poll `check()` until it returns something truthy; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)
