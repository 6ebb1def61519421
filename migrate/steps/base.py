"""The step-kind protocol, the registry of kinds and the questions other modules ask of a kind.

A plan step is a dict: {"id", "kind", "target", "group", "after", "request", "inverse"}. Each kind
(one class per kind, in `api`, `idp` and `setup`) builds its own steps, sends them, tells whether
an earlier attempt took effect, undoes them and says what they do. Everything else asks the kind
through the functions here, never by comparing kind names.
"""

from ..errors import CloudflareError, VgmigrateError
from ..runs import PENDING


class StepFailed(VgmigrateError):
    """A step failed (or must not go ahead): the run stops there, and its journal says how far it got."""


# Plan steps that belong to no single plan group: undone after every group is.
SHARED_STEPS = ("rg", "scope")


def plan_group_of(step_id):
    """The plan group a step belongs to ("g001" for "g001.members"), None for a shared step."""
    return None if step_id in SHARED_STEPS else step_id.split(".")[0]


def make_step(sid, kind, target, request, inverse, after=(), group=None):
    """A plan step as the planner, the cutover and `idp check --fix` write it."""
    step = {"id": sid, "kind": kind, "target": target, "after": list(after), "request": request, "inverse": inverse}
    if group is not None:
        step["group"] = group  # the plan group the step belongs to
    return step


class StepKind:
    kind = ""
    label = ""  # what the step does, for reports
    makes_group = False  # its object id is the plan group's Cloudflare User Group
    adds_members = False  # it puts members into a User Group (its request's "members")
    creates_policy = False  # it gives a User Group the migrated policy
    vgmigrate_manages = False  # the User Group it makes or adopts is vgmigrate's to change (not the IdP's)
    grants_to = None  # whom its access goes to (effective access view): "request", "gains" or "group"
    in_cloudflare_audit_log = True  # its calls (and its undo's) go to Cloudflare, which logs them

    def transport(self, client):
        """The client whose last response the journal records (status, cf-ray)."""
        return client

    def added_members(self, request):
        """Member ids this step puts into a User Group (and so gives its role)."""
        return []

    def describe(self, step):
        """What the step does, in words, for the plan table."""
        return self.label

    def already_done(self, client, request, err):
        """The object id when `err` refuses the call because an earlier attempt of this same run
        already did it (sent by a process that was killed, and landed late); else None. Only a
        kind that can tell its own objects from anyone else's says so."""
        return None

    def journaled(self, value, request):
        """What the journal may keep of this step's request, answer or error (a secret it sends stays out)."""
        return value

    def prepare(self, apply, step, request, prior):
        """(request to send, inverse to journal), just before the call. A pending row keeps the
        inverse recorded before its first attempt."""
        return request, prior["inverse"] if prior and prior["status"] == PENDING else dict(step["inverse"])

    def endpoint(self, client, request):
        """(method, path) of the call, as the journal records it."""
        raise NotImplementedError

    def send(self, client, request):
        raise NotImplementedError

    def object_id(self, request, result):
        """The id of the object the step created or changed."""
        raise NotImplementedError

    def reconcile(self, client, request, live, fresh):
        """Did an earlier attempt of this step take effect? The object id if so, else None.
        live: {"groups", "rgs"} read when the run started; fresh: read again now instead."""
        raise NotImplementedError

    def undo(self, job, action):
        """Undo one journaled action of this kind through the rollback `job`."""
        raise NotImplementedError


KINDS = {}


def register(*kinds):
    """Put step kinds into the registry `kind_of` reads (each module of this package registers its own)."""
    for kind in kinds:
        KINDS[kind.kind] = kind


def kind_of(step_or_action):
    """The StepKind of a plan step or journal row; a kind this vgmigrate does not know is refused."""
    kind = KINDS.get(step_or_action["kind"])
    if kind is None:
        raise VgmigrateError(f"unknown step kind {step_or_action['kind']!r}; this plan or journal was made by another vgmigrate")
    return kind


def is_kind(step_or_action, kind_class):
    """Is this plan step or journal row of that kind?"""
    return step_or_action["kind"] == kind_class.kind


def kinds_where(question):
    """The names of the kinds for which `question(kind)` is true, sorted (for SQL over the journal)."""
    return tuple(sorted(name for name, kind in KINDS.items() if question(kind)))


def added_members(step_or_action):
    """Member ids the step puts into a User Group (and so gives its role)."""
    return kind_of(step_or_action).added_members(step_or_action["request"])


def describe(step):
    return kind_of(step).describe(step)


def inverse_in_words(inverse):
    """A journaled undo record, in words (the audit export's journal)."""
    kind = inverse.get("kind", "?")
    if kind == "restore_members" and "members" in inverse:
        return f"restore_members ({len(inverse['members'])} members before)"
    if kind == "restore_policies":
        return f"restore_policies ({len(inverse.get('policies') or [])} policies before)"
    return kind


def in_cloudflare_audit_log(journal_kind):
    """Does Cloudflare's account audit log record the call of this journal row's kind (a step's
    kind, or `undo_<kind>` for a rollback's call)? A kind this vgmigrate does not know: yes."""
    kind = KINDS.get(journal_kind.removeprefix("undo_")) if journal_kind else None
    return kind is None or kind.in_cloudflare_audit_log


def user_group_or_none(client, gid):
    try:
        return client.user_group(gid)
    except CloudflareError as err:
        if err.status == 404:
            return None
        raise
