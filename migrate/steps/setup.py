"""Step kinds of `vgmigrate idp check --fix` (runs of kind `idp_fix`): create the Authentik SCIM
provider, create the application, or attach the provider to an existing application as a
backchannel provider, and link CF- groups to their Cloudflare groups; for any IdP, put a CF- group
into the push scope (Entra ID: assign it to the application). Registered like every kind, so
`vgmigrate rollback --run <idp_fix run>` undoes them.

Their step ids share the prefix "idp." so a rollback treats them as one group, undone newest
first: the application before the provider it points at.

The SCIM token a new provider carries is never journaled: the request journaled has no `token`.
"""

from ..idp.base import idp_of
from ..errors import AuthentikError
from ..http import same_url
from .base import StepKind, make_step, register
from ..runs import PENDING


class _IdpStep(StepKind):
    in_cloudflare_audit_log = False  # sent to Authentik

    def transport(self, client):
        return idp_of(client)

    def prepare(self, apply, step, request, prior):
        return request, prior["inverse"] if prior and prior["status"] == PENDING else step.get("inverse")

    @classmethod
    def build(cls, sid, target, request, inverse=None):
        return make_step(sid, cls.kind, target, request, inverse)


class CreateScimProvider(_IdpStep):
    kind = "create_scim_provider"
    label = "create the Authentik SCIM provider for Cloudflare"

    def endpoint(self, client, request):
        return "POST", idp_of(client).providers_path()

    def send(self, client, request):
        return idp_of(client).create_scim_provider(**request)

    def object_id(self, request, result):
        return result["pk"]

    def journaled(self, value, request):
        """The SCIM token it sends (and Authentik echoes before 2026.8) is never journaled."""
        return secret_free(value, request.get("token"))

    @staticmethod
    def find(idp, request):
        return next((p for p in idp.scim_providers() if same_url(p.get("url"), request["url"]) and p.get("name") == request["name"]), None)

    def reconcile(self, client, request, live, fresh):
        found = self.find(idp_of(client), request)
        return found["pk"] if found else None

    def undo(self, job, action):
        idp = idp_of(job.client)
        request = action["request"]
        try:
            provider = idp.scim_provider(action["object_id"]) if action["object_id"] else self.find(idp, request)
        except AuthentikError as err:
            if err.status != 404:
                raise
            provider = None
        if provider is None:
            return job.mark(action, "already gone")
        if not same_url(provider.get("url"), request["url"]) and not job.force:
            return job.leave(action, f"Authentik SCIM provider {provider.get('name')!r} left in place: its URL changed since the run; "
                                     "use --force to delete it anyway")
        # Deleting the provider keeps the groups and users it pushed to Cloudflare (Authentik only drops its links).
        job.call(action, "DELETE", idp.provider_path(provider["pk"]), lambda: idp.delete_scim_provider(provider["pk"]),
                 f"delete Authentik SCIM provider {provider.get('name')!r}")


class CreateApplication(_IdpStep):
    kind = "create_application"
    label = "create the Authentik application for Cloudflare"

    def endpoint(self, client, request):
        return "POST", idp_of(client).applications_path()

    def send(self, client, request):
        return idp_of(client).create_application(request["name"], request["slug"], request["backchannel_providers"])

    def object_id(self, request, result):
        return result.get("slug") or request["slug"]

    def reconcile(self, client, request, live, fresh):
        app = idp_of(client).application(request["slug"])
        return request["slug"] if app and set(request["backchannel_providers"]) <= set(app.get("backchannel_providers") or []) else None

    def undo(self, job, action):
        idp = idp_of(job.client)
        slug = action["object_id"] or action["request"]["slug"]
        app = idp.application(slug)
        if app is None:
            return job.mark(action, "already gone")
        ours = set(action["request"]["backchannel_providers"])
        others = set(app.get("backchannel_providers") or []) - ours
        if (others or app.get("provider")) and not job.force:
            return job.leave(action, f"Authentik application {slug!r} left in place: providers were added to it since the run; "
                                     "use --force to delete it anyway")
        job.call(action, "DELETE", idp.application_path(slug), lambda: idp.delete_application(slug), f"delete Authentik application {slug!r}")


class AttachBackchannelProvider(_IdpStep):
    """PATCH the application's `backchannel_providers` (the whole list) to the earlier list plus the provider."""

    kind = "attach_backchannel_provider"
    label = "attach the SCIM provider to an Authentik application"

    def prepare(self, apply, step, request, prior):
        # Re-read just before the PATCH: it replaces the list, so one added meanwhile must be kept.
        current = list((idp_of(apply.client).application(request["slug"]) or {}).get("backchannel_providers") or [])
        wanted = current + [request["provider"]] if request["provider"] not in current else current
        return {**request, "backchannel_providers": wanted}, {"backchannel_providers": current}

    def endpoint(self, client, request):
        return "PATCH", idp_of(client).application_path(request["slug"])

    def send(self, client, request):
        return idp_of(client).update_application(request["slug"], backchannel_providers=request["backchannel_providers"])

    def object_id(self, request, result):
        return request["slug"]

    def reconcile(self, client, request, live, fresh):
        app = idp_of(client).application(request["slug"])
        return request["slug"] if app and request["provider"] in (app.get("backchannel_providers") or []) else None

    def undo(self, job, action):
        idp = idp_of(job.client)
        slug, provider = action["request"]["slug"], action["request"]["provider"]
        app = idp.application(slug)
        if app is None:
            return job.mark(action, "application already gone")
        current = list(app.get("backchannel_providers") or [])
        if provider not in current:
            return job.mark(action, "already detached")
        # Only the provider this run attached is taken off; anything attached since stays.
        remaining = [p for p in current if p != provider]
        job.call(action, "PATCH", idp.application_path(slug), lambda: idp.update_application(slug, backchannel_providers=remaining),
                 f"detach the SCIM provider from Authentik application {slug!r}")


class LinkCfGroup(_IdpStep):
    """Link an Authentik CF- group to the Cloudflare group of the same name, pushed before this
    provider had a link to it (by another provider, or before end of life): Authentik never adopts
    an existing group before 2026.2 and does not discover them, so without the link a membership
    change in Authentik (a cutover's removals) never reaches Cloudflare."""

    kind = "link_cf_group"
    label = "link a CF- group in Authentik to its Cloudflare group"

    def endpoint(self, client, request):
        return "POST", idp_of(client).scim_group_links_path()

    def send(self, client, request):
        return idp_of(client).create_scim_group_link(request["provider"], request["group"], request["scim_id"])

    def object_id(self, request, result):
        return (result or {}).get("id")

    @staticmethod
    def find(idp, request):
        return next((link for link in idp.scim_group_links(request["provider"], request["group"])
                     if link.get("scim_id") == request["scim_id"]), None)

    def reconcile(self, client, request, live, fresh):
        link = self.find(idp_of(client), request)
        return link["id"] if link else None

    def undo(self, job, action):
        idp = idp_of(job.client)
        link = self.find(idp, action["request"])
        if link is None:
            return job.mark(action, "already unlinked")
        job.call(action, "DELETE", idp.scim_group_link_path(link["id"]), lambda: idp.delete_scim_group_link(link["id"]),
                 f"unlink Authentik group {action['target']!r} from Cloudflare group {action['request']['scim_id']}")


def secret_free(value, secret):
    """`value` with a `token` key dropped and the secret scrubbed from every string."""
    if isinstance(value, dict):
        return {k: secret_free(v, secret) for k, v in value.items() if k != "token"}
    if isinstance(value, list):
        return [secret_free(v, secret) for v in value]
    if isinstance(value, str) and secret:
        return value.replace(secret, "***")
    return value


register(CreateScimProvider(), CreateApplication(), AttachBackchannelProvider(), LinkCfGroup())


class AssignIdpGroup(_IdpStep):
    """Put one group into the provider's push scope (Entra: assign it to the enterprise
    application), leaving every other group as it is; undone by taking just that group out."""

    kind = "assign_idp_group"
    label = "put a CF- group into the IdP's push scope"

    def endpoint(self, client, request):
        return "POST", idp_of(client).scope_path(request["provider"])

    def send(self, client, request):
        idp = idp_of(client)
        scope = idp.scope_of(request["provider"])
        if request["group"] not in scope:
            idp.set_scope(request["provider"], scope + [request["group"]])
        return {"group": request["group"]}

    def object_id(self, request, result):
        return request["group"]

    def reconcile(self, client, request, live, fresh):
        return request["group"] if request["group"] in idp_of(client).scope_of(request["provider"]) else None

    def undo(self, job, action):
        idp = idp_of(job.client)
        provider, group = action["request"]["provider"], action["request"]["group"]
        scope = idp.scope_of(provider)
        if group not in scope:
            return job.mark(action, "already out of scope")
        job.call(action, "DELETE", idp.scope_path(provider), lambda: idp.set_scope(provider, [g for g in scope if g != group]),
                 f"take {action['target']!r} out of the IdP's push scope")


register(AssignIdpGroup())
