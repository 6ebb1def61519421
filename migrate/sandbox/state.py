"""The sandbox's in-memory account: records, lookup indexes, Cloudflare's write rules, snapshots.

Records keep references as ids (the seed format); `render.py` expands them for responses.
Every public method takes the state lock, so HTTP handler threads and test helpers can share one
State. Mutators raise `ApiError`/`ScimError` exactly as the API answers them.
"""

import bisect
import copy
import random
import re
import threading
from datetime import datetime, timezone

from .errors import ApiError, ScimError, bad_request, not_found

HEX32 = re.compile(r"^[0-9a-f]{32}$")
ACCOUNT_SCOPE = "com.cloudflare.api.account"
# The sandbox's own copy of the virtual group grammar (it is the oracle: it never imports the tool).
_VIRTUAL_GROUP_NAME = re.compile(r"^CF-([0-9a-fA-F]{32})\s*-\s*(.+)$", re.IGNORECASE)


class SeedError(ValueError):
    """The seed dict (or file) is malformed; the message names the offending path."""


def utc_now():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _sort_key(name):
    return (name.casefold(), name)


def reserved_name(name):
    """Cloudflare reserves the `CF` prefix (any case) for its own SCIM system groups."""
    return name[:2].upper() == "CF"


class State:
    def __init__(self, seed, random_seed=0):
        self.lock = threading.RLock()
        self._ids = random.Random(f"sandbox-ids-{random_seed}")
        self.audit = []  # v1 audit entries, oldest first
        self.audit_v2 = []  # Audit Logs v2 entries, oldest first
        self.role_views = {}  # role id -> the role as members listings show it (render.member)
        # Before 2025-12-02 Cloudflare took a pushed `CF-<acct> - <Role>` group as a virtual group:
        # on only to seed an account the way an IdP built it then (scim_create_group).
        self.before_end_of_life = False
        self._used_ids = set()
        _load(self, seed)
        self._used_ids = _ids_in_use(self)

    # ---- ids and time -------------------------------------------------------------------

    def new_id(self):
        """A fresh 32-hex id: seeded (stable across runs) and never one the account already uses,
        even when this state was loaded from a snapshot of a sandbox with the same random seed."""
        while True:
            new = "%032x" % self._ids.getrandbits(128)
            if new not in self._used_ids:
                self._used_ids.add(new)
                return new

    # ---- read helpers for tests and handlers ------------------------------------------------

    def snapshot(self):
        """A deep-copied plain dict in the seed format (loadable again as a seed)."""
        with self.lock:
            return {
                "account": copy.deepcopy(self.account),
                "permission_groups": copy.deepcopy(list(self.permission_groups.values())),
                "roles": copy.deepcopy(list(self.roles.values())),
                "members": [_member_seed(m) for m in self.members.values()],
                "resource_groups": copy.deepcopy(list(self.resource_groups.values())),
                "user_groups": [_user_group_seed(g) for g in self.user_groups.values()],
                "scim_groups": copy.deepcopy(list(self.scim_groups.values())),
                "scim_users": [_scim_user_seed(u) for u in self.scim_users.values()],
            }

    def user_groups_by_name(self):
        """{name: user group in the seed format (policies as ids, members as member ids)}."""
        with self.lock:
            return {g["name"]: _user_group_seed(g) for g in self.user_groups.values()}

    def user_group(self, group_id):
        with self.lock:
            group = self.user_groups.get(group_id)
            return _user_group_seed(group) if group else None

    def group_member_ids(self, group_id):
        with self.lock:
            return list(self.user_groups[group_id]["members"])

    def member_by_email(self, email):
        with self.lock:
            member_id = self.member_ids_by_email.get(email.casefold())
            return _member_seed(self.members[member_id]) if member_id else None

    def resource_groups_by_name(self):
        """{name: resource group}; unnamed groups (made by an inline policy scope) are left out."""
        with self.lock:
            return {rg["name"]: copy.deepcopy(rg) for rg in self.resource_groups.values() if rg["name"] is not None}

    def audit_entries(self):
        with self.lock:
            return copy.deepcopy(self.audit)

    # ---- user groups ------------------------------------------------------------------------

    def user_group_ids_sorted(self, descending=False):
        """Ids ordered by name (the list endpoint's `direction`), lazily."""
        keys = reversed(self._user_group_order) if descending else iter(self._user_group_order)
        return (group_id for _, group_id in keys)

    def create_user_group(self, name, policies, scim_managed=False, external_id=None):
        name = _valid_group_name(name)
        # Uniqueness of user group names is our assumption: Cloudflare documents no rule, but
        # the dashboard treats the name as the group's identity and SCIM adopts groups by name.
        if name in self.user_group_ids_by_name:
            raise bad_request(f"A user group named '{name}' already exists")
        now = utc_now()
        group = {
            "id": self.new_id(),
            "name": name,
            "policies": self._policies_from_body(policies or [], existing=()),
            "members": {},
            "scim_managed": scim_managed,
            "created_on": now,
            "modified_on": now,
        }
        if external_id is not None:
            group["external_id"] = external_id
        self._index_user_group(group)
        return group

    def update_user_group(self, group_id, name=None, policies=None, via_scim=False):
        group = self.require_user_group(group_id)
        if name is not None and name != group["name"]:
            name = _valid_group_name(name)
            if group["scim_managed"] and not via_scim:
                raise _scim_locked("its name")
            if name in self.user_group_ids_by_name:
                raise bad_request(f"A user group named '{name}' already exists")
            self._unindex_user_group_name(group)
            group["name"] = name
            self._index_user_group_name(group)
        if policies is not None:
            group["policies"] = self._policies_from_body(policies, existing=group["policies"], require_ids=True)
        group["modified_on"] = utc_now()
        return group

    def delete_user_group(self, group_id, via_scim=False):
        group = self.require_user_group(group_id)
        if group["scim_managed"] and not via_scim:
            raise _scim_locked("deletion")
        for member_id in group["members"]:
            self.groups_of_member[member_id].pop(group_id, None)
        self._unindex_user_group_name(group)
        del self.user_groups[group_id]
        return group

    def require_user_group(self, group_id):
        group = self.user_groups.get(group_id)
        if group is None:
            raise not_found("User group")
        return group

    def add_group_members(self, group_id, member_ids, via_scim=False):
        """Adds to the set (members already in it are a no-op); returns whether anything changed."""
        group = self._writable_members(group_id, via_scim)
        self._require_members(member_ids)
        now = utc_now()
        new = [member_id for member_id in dict.fromkeys(member_ids) if member_id not in group["members"]]
        for member_id in new:
            self._attach(group, member_id, now)
        if new:
            group["modified_on"] = now
        return bool(new)

    def replace_group_members(self, group_id, member_ids, via_scim=False):
        group = self._writable_members(group_id, via_scim)
        self._require_members(member_ids)
        wanted = dict.fromkeys(member_ids)
        for member_id in [m for m in group["members"] if m not in wanted]:
            self._remove_from_group(group, member_id)
        now = utc_now()
        for member_id in wanted:
            if member_id not in group["members"]:
                self._attach(group, member_id, now)
        group["modified_on"] = now

    def _writable_members(self, group_id, via_scim):
        group = self.require_user_group(group_id)
        if group["scim_managed"] and not via_scim:
            raise _scim_locked("its members")
        return group

    def _attach(self, group, member_id, now):
        group["members"][member_id] = now
        self.groups_of_member.setdefault(member_id, {})[group["id"]] = None

    def remove_group_member(self, group_id, member_id, via_scim=False):
        group = self._writable_members(group_id, via_scim)
        if member_id not in group["members"]:
            raise not_found("User group member")
        self._remove_from_group(group, member_id)
        group["modified_on"] = utc_now()

    def _remove_from_group(self, group, member_id):
        del group["members"][member_id]
        self.groups_of_member.get(member_id, {}).pop(group["id"], None)

    def _require_members(self, member_ids):
        for member_id in member_ids:
            if member_id not in self.members:
                raise bad_request(f"'{member_id}' is not a member of this account")

    def _policies_from_body(self, policies, existing, require_ids=False):
        """Validates written policies; PUT keeps the ids of policies it names, new ones get ids.

        `require_ids` (user group PUT, schema `iam_update_user_group_body`): every policy must
        carry a 32-hex `id`; one the group does not have is a new policy and gets a fresh id.
        """
        if not isinstance(policies, list):
            raise bad_request("policies must be an array")
        known = {p["id"] for p in existing}
        result = []
        for index, policy in enumerate(policies):
            where = f"policies[{index}]"
            if not isinstance(policy, dict):
                raise bad_request(f"{where} must be an object")
            access = policy.get("access")
            if access not in ("allow", "deny"):
                raise bad_request(f"{where}.access must be 'allow' or 'deny'")
            pg_ids = self._referenced_ids(policy, "permission_groups", where, self.permission_groups, "permission group")
            rg_ids = self._referenced_ids(policy, "resource_groups", where, self.resource_groups, "resource group")
            policy_id = policy.get("id")
            if require_ids and "id" not in policy:
                raise bad_request(f"{where}.id is required")
            if "id" in policy and not (isinstance(policy_id, str) and HEX32.match(policy_id)):
                raise bad_request(f"{where}.id must be a 32-character hex policy identifier")
            if policy_id not in known:
                policy_id = self.new_id()
            known.discard(policy_id)  # an id named twice keeps it only the first time
            result.append({"id": policy_id, "access": access, "permission_groups": pg_ids, "resource_groups": rg_ids})
        return result

    @staticmethod
    def _referenced_ids(policy, field, where, table, what):
        refs = policy.get(field)
        if not isinstance(refs, list) or not refs:
            raise bad_request(f"{where}.{field} must be a non-empty array of {{\"id\": ...}}")
        ids = []
        for ref in refs:
            ref_id = ref.get("id") if isinstance(ref, dict) else None
            if not isinstance(ref_id, str):
                raise bad_request(f"{where}.{field}: each item needs an 'id'")
            if ref_id not in table:
                raise bad_request(f"{where}.{field}: unknown {what} '{ref_id}'")
            ids.append(ref_id)
        return ids

    def _index_user_group(self, group):
        self.user_groups[group["id"]] = group
        self._index_user_group_name(group)

    def _index_user_group_name(self, group):
        self.user_group_ids_by_name[group["name"]] = group["id"]
        bisect.insort(self._user_group_order, (_sort_key(group["name"]), group["id"]))

    def _unindex_user_group_name(self, group):
        self.user_group_ids_by_name.pop(group["name"], None)
        entry = (_sort_key(group["name"]), group["id"])
        index = bisect.bisect_left(self._user_group_order, entry)
        if index < len(self._user_group_order) and self._user_group_order[index] == entry:
            del self._user_group_order[index]

    # ---- resource groups ----------------------------------------------------------------

    def create_resource_group(self, name, scope):
        if not isinstance(name, str) or not name.strip():
            raise bad_request("name is required")
        group = {"id": self.new_id(), "name": name, "scope": _valid_scope(scope), "meta": {"key": "editable", "value": "true"}}
        self.resource_groups[group["id"]] = group
        return group

    def update_resource_group(self, group_id, name=None, scope=None):
        group = self.require_resource_group(group_id)
        if name is not None:
            if not isinstance(name, str) or not name.strip():
                raise bad_request("name must be a non-empty string")
            group["name"] = name
        if scope is not None:
            group["scope"] = _valid_scope(scope)
        return group

    def delete_resource_group(self, group_id):
        group = self.require_resource_group(group_id)
        users = [g["name"] for g in self.user_groups.values() if any(group_id in p["resource_groups"] for p in g["policies"])]
        users += [m["email"] for m in self.members.values() if any(group_id in p["resource_groups"] for p in m["policies"])]
        if users:
            raise bad_request(f"Resource group is used by policies of: {', '.join(users[:5])}")
        del self.resource_groups[group_id]
        return group

    def require_resource_group(self, group_id):
        group = self.resource_groups.get(group_id)
        if group is None:
            raise not_found("Resource group")
        return group

    # ---- account members ----------------------------------------------------------------

    def require_member(self, member_id):
        member = self.members.get(member_id)
        if member is None:
            raise not_found("Member")
        return member

    def add_member(self, email, roles=None, policies=None, status="pending", user_id=None):
        if not isinstance(email, str) or "@" not in email:
            raise bad_request("email is required")
        if email.casefold() in self.member_ids_by_email:
            raise bad_request(f"{email} is already a member of this account")
        if status not in ("accepted", "pending"):
            raise bad_request("status must be 'accepted' or 'pending'")
        member = {
            "id": self.new_id(),
            "email": email,
            "status": status,
            "user": {
                "id": user_id or self.new_id(),
                "email": email,
                "first_name": None,
                "last_name": None,
                "two_factor_authentication_enabled": False,
            },
            "roles": [],
            "policies": [],
        }
        self._assign_member_access(member, roles, policies)
        self._index_member(member)
        return member

    def update_member(self, member_id, roles=None, policies=None):
        member = self.require_member(member_id)
        self._assign_member_access(member, roles, policies)
        return member

    def _assign_member_access(self, member, roles, policies):
        if (roles is None) == (policies is None):
            raise bad_request("Exactly one of these attributes must be configured: [roles,policies]")
        if roles is not None:
            if not isinstance(roles, list):
                raise bad_request("roles must be an array")
            role_ids = [r.get("id") if isinstance(r, dict) else r for r in roles]
            for role_id in role_ids:
                if role_id not in self.roles:
                    raise bad_request(f"unknown role '{role_id}'")
            member["roles"] = list(dict.fromkeys(role_ids))
        else:
            member["policies"] = self._policies_from_body(policies, existing=member["policies"])

    def delete_member(self, member_id):
        member = self.require_member(member_id)
        for group_id in list(self.groups_of_member.get(member_id, {})):
            group = self.user_groups[group_id]
            del group["members"][member_id]
        self.groups_of_member.pop(member_id, None)
        del self.members[member_id]
        self.member_ids_by_email.pop(member["email"].casefold(), None)
        self.member_ids_by_user_id.pop(member["user"]["id"], None)
        return member

    def _index_member(self, member):
        self.members[member["id"]] = member
        self.member_ids_by_email[member["email"].casefold()] = member["id"]
        self.member_ids_by_user_id[member["user"]["id"]] = member["id"]

    # ---- SCIM ------------------------------------------------------------------------------

    def scim_group_ids(self):
        """System groups first, then the user groups the IdP pushed (custom SCIM groups). A User
        Group made in Cloudflare is not a SCIM group until an IdP pushes one with its name."""
        yield from self.scim_groups
        yield from (gid for gid, g in self.user_groups.items() if g["scim_managed"])

    def scim_group_count(self):
        return len(self.scim_groups) + sum(1 for g in self.user_groups.values() if g["scim_managed"])

    def is_scim_group(self, group_id):
        return group_id in self.scim_groups or (group_id in self.user_groups and self.user_groups[group_id]["scim_managed"])

    def scim_user_group_ids(self, user):
        groups = list(user["groups"])
        member_id = self.member_ids_by_user_id.get(user["id"])
        if member_id:
            groups.extend(g for g in self.groups_of_member.get(member_id, ()) if self.user_groups[g]["scim_managed"])
        return groups

    def scim_group_by_display_name(self, name):
        folded = name.casefold()
        group_id = self.scim_group_ids_by_name.get(folded)
        if group_id:
            return group_id
        for group in self.user_groups.values():
            if group["scim_managed"] and group["name"].casefold() == folded:
                return group["id"]
        return None

    def scim_create_group(self, display_name, external_id=None):
        if not isinstance(display_name, str) or not display_name.strip():
            raise ScimError(400, "displayName is required", "invalidValue")
        if self.before_end_of_life and reserved_name(display_name):
            return self._create_virtual_group(display_name)
        if reserved_name(display_name):
            raise ScimError(400, "displayName must not begin with the reserved prefix 'CF'", "invalidValue")
        existing = self.user_group_ids_by_name.get(display_name)
        if existing:
            group = self.user_groups[existing]
            if group["scim_managed"]:
                raise ScimError(409, f"A group named '{display_name}' already exists", "uniqueness")
            # A Cloudflare group with the pushed name is adopted and becomes read-only (Entra docs).
            group["scim_managed"] = True
            if external_id is not None:
                group["external_id"] = external_id
            group["modified_on"] = utc_now()
            return group
        return self.create_user_group(display_name, [], scim_managed=True, external_id=external_id)

    def _create_virtual_group(self, display_name):
        """Before end of life: a pushed `CF-<this account> - <Role name>` becomes a system group
        whose members get that legacy role. Another account, an unknown role or a name some SCIM
        group already has is refused (the IdP then pushed into nothing)."""
        found = _VIRTUAL_GROUP_NAME.match(display_name)
        if not found or found.group(1).lower() != self.account["id"]:
            raise ScimError(400, "displayName must be CF-<this account id> - <role name>", "invalidValue")
        role_name = found.group(2).strip().casefold()
        role_id = next((r["id"] for r in self.roles.values() if r["name"].casefold() == role_name), None)
        if role_id is None:
            raise ScimError(400, f"No role named '{found.group(2).strip()}' in this account", "invalidValue")
        if self.scim_group_by_display_name(display_name):
            raise ScimError(409, f"A group named '{display_name}' already exists", "uniqueness")
        group_id = f"cloudflare-v1-{role_id}"
        if group_id in self.scim_groups:
            group_id = f"cloudflare-v1-{self.new_id()}"
        self.scim_groups[group_id] = {"id": group_id, "displayName": display_name, "system": True, "role": role_id}
        self.scim_group_ids_by_name.setdefault(display_name.casefold(), group_id)
        return self.scim_groups[group_id]

    def member_id_for_user_tag(self, tag):
        member_id = self.member_ids_by_user_id.get(tag)
        if member_id is None:
            raise ScimError(400, f"No account member has user id '{tag}'", "invalidValue")
        return member_id

    def scim_create_user(self, user_name, name=None, display_name=None, external_id=None):
        if user_name.casefold() in self.scim_user_ids_by_name:
            raise ScimError(409, f"User '{user_name}' already exists", "uniqueness")
        member_id = self.member_ids_by_email.get(user_name.casefold())
        if member_id is None:
            # SCIM provisioning creates the account membership (Minimal Account Access).
            member = self.add_member(user_name, roles=[], status="accepted")
        else:
            member = self.members[member_id]
        user = {"id": member["user"]["id"], "userName": user_name, "active": True, "groups": {}}
        if name:
            user["name"] = name
        if display_name:
            user["displayName"] = display_name
        if external_id is not None:
            user["externalId"] = external_id
        self.scim_users[user["id"]] = user
        self.scim_user_ids_by_name[user_name.casefold()] = user["id"]
        return user

    def scim_set_user_active(self, user, active):
        """`active: false` deprovisions (the account membership goes, the SCIM user stays);
        `active: true` provisions the membership again, with the roles of its system groups."""
        user["active"] = bool(active)
        member_id = self.member_ids_by_user_id.get(user["id"])
        if not active and member_id:
            self.delete_member(member_id)
        elif active and not member_id and user["userName"].casefold() not in self.member_ids_by_email:
            member = self.add_member(user["userName"], roles=[], status="accepted", user_id=user["id"])
            for group_id in user["groups"]:
                self._grant_system_role(member, group_id)

    def scim_change_system_members(self, group_id, kind, tags):
        """Membership of a system (virtual) group: `kind` add | replace | remove, `tags` SCIM user
        ids (None with remove: everyone). Joining grants the group's role to the account member
        (it shows in the member's `roles`); leaving revokes it unless another system group the
        user is still in grants the same role (SEMANTICS 1.3)."""
        if tags is not None:
            for tag in tags:
                if tag not in self.scim_users:
                    raise ScimError(400, f"No SCIM user has id '{tag}'", "invalidValue")
        current = [u for u in self.scim_users.values() if group_id in u["groups"]]
        if kind == "replace" or tags is None:
            leaving = current
        elif kind == "remove":
            leaving = [self.scim_users[tag] for tag in dict.fromkeys(tags) if group_id in self.scim_users[tag]["groups"]]
        else:
            leaving = []
        for user in leaving:
            del user["groups"][group_id]
        if kind in ("add", "replace"):
            for tag in dict.fromkeys(tags):
                self.scim_users[tag]["groups"][group_id] = None
        for user in leaving:
            if group_id not in user["groups"]:
                self._revoke_system_role(user, group_id)
        if kind in ("add", "replace"):
            for tag in dict.fromkeys(tags):
                member_id = self.member_ids_by_user_id.get(tag)
                if member_id:
                    self._grant_system_role(self.members[member_id], group_id)

    def _grant_system_role(self, member, group_id):
        role_id = self.scim_groups[group_id].get("role")
        if role_id and role_id not in member["roles"]:
            member["roles"].append(role_id)

    def _revoke_system_role(self, user, group_id):
        role_id = self.scim_groups[group_id].get("role")
        member_id = self.member_ids_by_user_id.get(user["id"])
        if not role_id or not member_id:
            return
        if any(self.scim_groups[other].get("role") == role_id for other in user["groups"]):
            return  # still granted by another system group the user is in
        member = self.members[member_id]
        if role_id in member["roles"]:
            member["roles"].remove(role_id)

    # ---- effective access (the oracle) ----------------------------------------------------------

    def effective_access(self, member_ids=None):
        """{member id: frozenset((permission group id, scope))}: what each member can do, from
        their direct roles, their direct policies and their User Groups' policies. Pure: reads
        only. See `effective_access` at module level for the rules."""
        with self.lock:
            return effective_access(self, member_ids)

    def scim_rename_user(self, user, user_name):
        self.scim_user_ids_by_name.pop(user["userName"].casefold(), None)
        user["userName"] = user_name
        self.scim_user_ids_by_name[user_name.casefold()] = user["id"]

    # ---- audit ------------------------------------------------------------------------------

    def record_audit(self, entry):
        self.audit.append(entry)

    def record_audit_v2(self, entry):
        self.audit_v2.append(entry)

    def audit_v2_entries(self):
        with self.lock:
            return copy.deepcopy(self.audit_v2)


def _scim_locked(what):
    return bad_request(
        f"This user group is managed by SCIM: {what} can only be changed by the identity provider "
        "(policies may still be changed)"
    )


def _valid_group_name(name):
    if not isinstance(name, str) or not name.strip():
        raise bad_request("name is required and must be a non-empty string")
    if reserved_name(name):
        raise bad_request("User group names cannot begin with the reserved prefix 'CF'")
    return name


def _valid_scope(scope):
    if not isinstance(scope, dict):
        raise bad_request("scope is required: {\"key\": ..., \"objects\": [{\"key\": ...}]}")
    key = scope.get("key")
    if not isinstance(key, str) or not key.startswith(ACCOUNT_SCOPE + "."):
        raise bad_request(f"scope.key must look like '{ACCOUNT_SCOPE}.<account id>'")
    objects = scope.get("objects")
    if not isinstance(objects, list) or not objects:
        raise bad_request("scope.objects must contain at least one {\"key\": ...}")
    clean = []
    for obj in objects:
        if not isinstance(obj, dict) or not isinstance(obj.get("key"), str):
            raise bad_request("scope.objects items must be {\"key\": <string>}")
        clean.append({"key": obj["key"]})
    return {"key": key, "objects": clean}


# ---- seed loading --------------------------------------------------------------------------


def _load(state, seed):
    if not isinstance(seed, dict):
        raise SeedError("seed: expected a JSON object")
    account = _require(seed, "account", dict, "seed")
    for field in ("id", "name"):
        _require(account, field, str, "seed.account")
    if not HEX32.match(account["id"]):
        raise SeedError("seed.account.id: expected 32 lower-case hex characters")
    state.account = {"type": "enterprise", **copy.deepcopy(account)}
    state.account.setdefault("created_on", "2019-03-04T10:00:00Z")
    state.account.setdefault("settings", {"enforce_twofactor": False, "abuse_contact_email": None})

    state.permission_groups = {}
    state.permission_group_ids_by_name = {}  # name -> first id with that name
    state.permission_groups_named = {}  # name -> every id with that name (the list filter)
    for i, pg in enumerate(_list(seed, "permission_groups")):
        where = f"seed.permission_groups[{i}]"
        _require_fields(pg, where, id=str, name=str, meta=dict)
        _unique(state.permission_groups, pg["id"], where)
        state.permission_groups[pg["id"]] = {"id": pg["id"], "name": pg["name"], "meta": copy.deepcopy(pg["meta"])}
        state.permission_group_ids_by_name.setdefault(pg["name"], pg["id"])
        state.permission_groups_named.setdefault(pg["name"], []).append(pg["id"])

    state.roles = {}
    for i, role in enumerate(_list(seed, "roles")):
        where = f"seed.roles[{i}]"
        _require_fields(role, where, id=str, name=str)
        _unique(state.roles, role["id"], where)
        state.roles[role["id"]] = {
            "id": role["id"],
            "name": role["name"],
            "description": role.get("description", ""),
            "permissions": copy.deepcopy(role.get("permissions", {})),
        }
        if "permission_group" in role:  # hidden: what the role is worth in permission groups
            if role["permission_group"] is not None and role["permission_group"] not in state.permission_groups:
                raise SeedError(f"{where}.permission_group: unknown permission group {role['permission_group']!r}")
            state.roles[role["id"]]["permission_group"] = role["permission_group"]

    state.resource_groups = {}
    for i, rg in enumerate(_list(seed, "resource_groups")):
        where = f"seed.resource_groups[{i}]"
        _require_fields(rg, where, id=str, scope=dict)
        _unique(state.resource_groups, rg["id"], where)
        try:
            scope = _valid_scope(rg["scope"])
        except ApiError as err:
            raise SeedError(f"{where}.scope: {err.message}") from None
        if rg.get("name") is not None and not isinstance(rg["name"], str):
            raise SeedError(f"{where}.name: expected a string (or no name)")
        state.resource_groups[rg["id"]] = {
            "id": rg["id"],
            "name": rg.get("name"),  # None: made quietly by an inline policy scope
            "scope": scope,
            "meta": copy.deepcopy(rg.get("meta", {"key": "editable", "value": "true"})),
        }

    state.members = {}
    state.member_ids_by_email = {}
    state.member_ids_by_user_id = {}
    for i, member in enumerate(_list(seed, "members")):
        where = f"seed.members[{i}]"
        _require_fields(member, where, id=str, email=str)
        _unique(state.members, member["id"], where)
        if member["email"].casefold() in state.member_ids_by_email:
            raise SeedError(f"{where}.email: duplicate email {member['email']!r}")
        status = member.get("status", "accepted")
        if status not in ("accepted", "pending"):
            raise SeedError(f"{where}.status: expected 'accepted' or 'pending'")
        user = dict(member.get("user") or {})
        user.setdefault("id", member["id"])
        user.setdefault("email", member["email"])
        user.setdefault("first_name", None)
        user.setdefault("last_name", None)
        user.setdefault("two_factor_authentication_enabled", False)
        roles = list(member.get("roles", []))
        for role_id in roles:
            if role_id not in state.roles:
                raise SeedError(f"{where}.roles: unknown role id {role_id!r}")
        record = {
            "id": member["id"],
            "email": member["email"],
            "status": status,
            "user": user,
            "roles": roles,
            "policies": _seed_policies(state, member.get("policies", []), where),
        }
        state._index_member(record)

    state.user_groups = {}
    state.user_group_ids_by_name = {}
    state._user_group_order = []
    state.groups_of_member = {}
    for i, group in enumerate(_list(seed, "user_groups")):
        where = f"seed.user_groups[{i}]"
        _require_fields(group, where, id=str, name=str)
        _unique(state.user_groups, group["id"], where)
        if group["name"] in state.user_group_ids_by_name:
            raise SeedError(f"{where}.name: duplicate user group name {group['name']!r}")
        created = group.get("created_on", "2025-07-01T09:00:00Z")
        record = {
            "id": group["id"],
            "name": group["name"],
            "policies": _seed_policies(state, group.get("policies", []), where),
            "members": {},
            "scim_managed": bool(group.get("scim_managed", False)),
            "created_on": created,
            "modified_on": group.get("modified_on", created),
        }
        if group.get("externalId") is not None:
            record["external_id"] = group["externalId"]
        for member_id in group.get("members", []):
            if member_id not in state.members:
                raise SeedError(f"{where}.members: unknown member id {member_id!r}")
            record["members"][member_id] = created
            state.groups_of_member.setdefault(member_id, {})[group["id"]] = None
        state._index_user_group(record)

    state.scim_groups = {}
    state.scim_group_ids_by_name = {}
    for i, group in enumerate(_list(seed, "scim_groups")):
        where = f"seed.scim_groups[{i}]"
        _require_fields(group, where, id=str, displayName=str)
        _unique(state.scim_groups, group["id"], where)
        record = {"id": group["id"], "displayName": group["displayName"], "system": True}
        if "role" in group:
            if group["role"] is not None and group["role"] not in state.roles:
                raise SeedError(f"{where}.role: unknown role id {group['role']!r}")
            record["role"] = group["role"]
        else:
            record["role"] = _role_of_system_group(state, group["id"])
        state.scim_groups[group["id"]] = record
        state.scim_group_ids_by_name.setdefault(group["displayName"].casefold(), group["id"])

    state.scim_users = {}
    state.scim_user_ids_by_name = {}
    for i, user in enumerate(_list(seed, "scim_users")):
        where = f"seed.scim_users[{i}]"
        _require_fields(user, where, id=str, userName=str)
        _unique(state.scim_users, user["id"], where)
        groups = {}
        for group_id in user.get("groups", []):
            if group_id not in state.scim_groups:
                raise SeedError(
                    f"{where}.groups: {group_id!r} is not a scim_groups id "
                    "(custom group membership comes from user_groups[].members)"
                )
            groups[group_id] = None
        record = {"id": user["id"], "userName": user["userName"], "active": bool(user.get("active", True)), "groups": groups}
        for optional in ("name", "displayName", "externalId"):
            if optional in user:
                record[optional] = copy.deepcopy(user[optional])
        state.scim_users[user["id"]] = record
        state.scim_user_ids_by_name[user["userName"].casefold()] = user["id"]


ACCOUNT = "account"  # the effective-access scope of the whole account


def effective_access(state, member_ids=None):
    """The sandbox's own reading of Cloudflare's access rules (SEMANTICS 3.1), independent of the tool.

    Scopes: "account" (the whole account: scope key `com.cloudflare.api.account.<this account>`
    with object "*"), "zone:<zone id>" (object `com.cloudflare.api.account.zone.<zone id>`), any
    other object key as it is (a resource), and "account-except:<scope>,<scope>..." for an
    account-wide grant with some zones or resources denied. A resource group of another account
    grants nothing here.
    - A legacy role counts as its permission group: the role's hidden `permission_group`, else the
      permission group with the role's exact name; a role with none counts as "role:<role id>".
      Roles are account-wide.
    - Allow policies (the member's and every User Group's they are in) add (permission group,
      scope) pairs; the union is additive.
    - A deny, from any of those policies, wins over every allow: a denied account removes the
      permission group everywhere, a denied zone or resource removes that scope (and narrows an
      account-wide grant to "account-except:...").
    Permission groups are not expanded into each other (Administrator does not imply DNS), and a
    pending member's access is counted as assigned.
    """
    members = state.members if member_ids is None else {m: state.members[m] for m in member_ids}
    pg_of_role = {}
    for role in state.roles.values():
        pg = role.get("permission_group", _MISSING)
        if pg is _MISSING:
            pg = state.permission_group_ids_by_name.get(role["name"])
        pg_of_role[role["id"]] = pg or f"role:{role['id']}"
    scopes_of_rg = {rg_id: _effective_scopes(state.account["id"], rg["scope"]) for rg_id, rg in state.resource_groups.items()}
    result = {}
    for member_id, member in members.items():
        allowed, denied = {}, {}
        for role_id in member["roles"]:
            allowed.setdefault(pg_of_role[role_id], set()).add(ACCOUNT)
        policies = list(member["policies"])
        for group_id in state.groups_of_member.get(member_id, ()):
            policies.extend(state.user_groups[group_id]["policies"])
        for policy in policies:
            target = allowed if policy["access"] == "allow" else denied
            scopes = set().union(*(scopes_of_rg[rg_id] for rg_id in policy["resource_groups"]))
            for pg_id in policy["permission_groups"]:
                target.setdefault(pg_id, set()).update(scopes)
        access = set()
        for pg_id, scopes in allowed.items():
            no = denied.get(pg_id, set())
            if ACCOUNT in no:
                continue
            for scope in scopes - no:
                if scope == ACCOUNT and no:
                    scope = "account-except:" + ",".join(sorted(no))
                access.add((pg_id, scope))
        result[member_id] = frozenset(access)
    return result


_MISSING = object()


def _effective_scopes(account_id, scope):
    """Effective-access scopes of one resource group scope (see `effective_access`)."""
    key, objects = scope["key"], [o["key"] for o in scope["objects"]]
    zone_prefix = ACCOUNT_SCOPE + ".zone."
    if key == f"{ACCOUNT_SCOPE}.{account_id}":
        scopes = set()
        for obj in objects:
            if obj == "*":
                scopes.add(ACCOUNT)
            elif obj.startswith(zone_prefix):
                scopes.add("zone:" + obj[len(zone_prefix):])
            else:
                scopes.add(obj)
        return scopes
    if key.startswith(zone_prefix):  # a zone as the key: the zone, whatever the objects say
        return {"zone:" + key[len(zone_prefix):]}
    return set()  # another account's scope


def _role_of_system_group(state, group_id):
    """The legacy role a system group grants when the seed does not say: `cloudflare-v1-<tag>` is
    backed by a permission group (the role of the same name) or, for retired roles, by the role."""
    tag = group_id[len("cloudflare-v1-"):] if group_id.startswith("cloudflare-v1-") else group_id
    if tag in state.roles:
        return tag
    pg = state.permission_groups.get(tag)
    if pg is None:
        return None
    return next((role["id"] for role in state.roles.values() if role["name"] == pg["name"]), None)


def _ids_in_use(state):
    ids = set(state.permission_groups) | set(state.roles) | set(state.resource_groups) | set(state.user_groups)
    ids |= set(state.members) | set(state.member_ids_by_user_id) | set(state.scim_users)
    for holder in (*state.members.values(), *state.user_groups.values()):
        ids.update(p["id"] for p in holder["policies"])
    return ids


def _seed_policies(state, policies, where):
    if not isinstance(policies, list):
        raise SeedError(f"{where}.policies: expected a list")
    result = []
    for j, policy in enumerate(policies):
        pw = f"{where}.policies[{j}]"
        if not isinstance(policy, dict):
            raise SeedError(f"{pw}: expected an object")
        pg_ids = [ref.get("id") if isinstance(ref, dict) else ref for ref in policy.get("permission_groups", [])]
        rg_ids = [ref.get("id") if isinstance(ref, dict) else ref for ref in policy.get("resource_groups", [])]
        for pg_id in pg_ids:
            if pg_id not in state.permission_groups:
                raise SeedError(f"{pw}.permission_groups: unknown permission group {pg_id!r}")
        for rg_id in rg_ids:
            if rg_id not in state.resource_groups:
                raise SeedError(f"{pw}.resource_groups: unknown resource group {rg_id!r}")
        if policy.get("access", "allow") not in ("allow", "deny"):
            raise SeedError(f"{pw}.access: expected 'allow' or 'deny'")
        result.append(
            {
                "id": policy.get("id") or state.new_id(),
                "access": policy.get("access", "allow"),
                "permission_groups": pg_ids,
                "resource_groups": rg_ids,
            }
        )
    return result


def _list(seed, key):
    value = seed.get(key, [])
    if not isinstance(value, list):
        raise SeedError(f"seed.{key}: expected a list")
    return value


def _require(obj, key, kind, where):
    value = obj.get(key)
    if not isinstance(value, kind):
        raise SeedError(f"{where}.{key}: required, expected {kind.__name__}")
    return value


def _require_fields(obj, where, **fields):
    if not isinstance(obj, dict):
        raise SeedError(f"{where}: expected an object")
    for key, kind in fields.items():
        _require(obj, key, kind, where)


def _unique(table, key, where):
    if key in table:
        raise SeedError(f"{where}.id: duplicate id {key!r}")


# ---- records -> seed format -------------------------------------------------------------------


def _policies_seed(policies):
    return [
        {
            "id": p["id"],
            "access": p["access"],
            "permission_groups": [{"id": i} for i in p["permission_groups"]],
            "resource_groups": [{"id": i} for i in p["resource_groups"]],
        }
        for p in policies
    ]


def _member_seed(member):
    return {
        "id": member["id"],
        "email": member["email"],
        "status": member["status"],
        "user": dict(member["user"]),
        "roles": list(member["roles"]),
        "policies": _policies_seed(member["policies"]),
    }


def _user_group_seed(group):
    seed = {
        "id": group["id"],
        "name": group["name"],
        "policies": _policies_seed(group["policies"]),
        "members": list(group["members"]),
        "scim_managed": group["scim_managed"],
        "created_on": group["created_on"],
        "modified_on": group["modified_on"],
    }
    if "external_id" in group:
        seed["externalId"] = group["external_id"]
    return seed


def _scim_user_seed(user):
    seed = {"id": user["id"], "userName": user["userName"], "active": user["active"], "groups": list(user["groups"])}
    for optional in ("name", "displayName", "externalId"):
        if optional in user:
            seed[optional] = copy.deepcopy(user[optional])
    return seed
