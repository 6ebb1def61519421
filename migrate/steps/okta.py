"""Step kinds of `vgmigrate idp check --fix` for Okta (runs of kind `idp_fix`): link a CF- group
to its Cloudflare group with a Group Push mapping. Registered like every kind, so
`vgmigrate rollback --run <idp_fix run>` undoes them.
"""

from ..idp.base import idp_of
from .setup import _IdpStep
from .base import register


class LinkPushMapping(_IdpStep):
    """An ACTIVE Group Push mapping from an Okta CF- group to the Cloudflare group of the same name,
    linked through the app group Okta imported for it (`targetGroupId`): pushing it by name would
    fail, Cloudflare refusing a new group named CF-. Without a mapping, a membership change in Okta
    (a cutover's removals) never reaches Cloudflare."""

    kind = "link_push_mapping"
    label = "link a CF- group in Okta to its Cloudflare group with a Group Push mapping"

    def endpoint(self, client, request):
        return "POST", idp_of(client).push_path(request["app"])

    def send(self, client, request):
        return idp_of(client).link_mapping(request["app"], request["group"], request["target"])

    def object_id(self, request, result):
        return (result or {}).get("id")

    def reconcile(self, client, request, live, fresh):
        mapping = idp_of(client).mapping_for(request["app"], request["group"])
        return mapping["id"] if mapping and mapping.get("targetGroupId") == request["target"] else None

    def undo(self, job, action):
        idp, request = idp_of(job.client), action["request"]
        mapping = idp.mapping_for(request["app"], request["group"])
        if mapping is None or mapping.get("targetGroupId") != request["target"]:
            return job.mark(action, "already unlinked")
        path = idp.mapping_path(request["app"], mapping["id"])
        if mapping.get("status") == "ACTIVE":  # Okta deletes only an INACTIVE mapping
            job.call(action, "PATCH", path, lambda: idp.set_mapping_status(request["app"], mapping["id"], "INACTIVE"),
                     f"deactivate the Group Push mapping of Okta group {action['target']!r}", final=False)
        # The Cloudflare group is a CF- system group: it stays (deleteTargetGroup=false).
        job.call(action, "DELETE", f"{path}?deleteTargetGroup=false",
                 lambda: idp.delete_mapping(request["app"], mapping["id"], False),
                 f"delete the Group Push mapping of Okta group {action['target']!r}, keeping its Cloudflare group")


register(LinkPushMapping())
