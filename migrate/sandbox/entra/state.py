"""The Entra tenant the sandbox holds: users, groups, one enterprise application (a service
principal with a SCIM synchronization job), its app role assignments, the job's links to
Cloudflare's SCIM objects, and the provisioning log. Plain dicts under one lock (`State.lock`)."""

import itertools
import random
import threading
import uuid
from datetime import datetime, timedelta, timezone

# Non-gallery apps ("Create your own application") carry these tags; their job's template is "scim".
CUSTOM_APP_TAGS = ["WindowsAzureActiveDirectoryCustomSingleSignOnApplication", "WindowsAzureActiveDirectoryIntegratedApp"]
DEFAULT_ACCESS_ROLE = "00000000-0000-0000-0000-000000000000"  # the "Default Access" app role id
USER_ROLE = "18d14569-c3bd-439b-9a66-3a2aee01d14f"  # a "User" app role of a non-gallery app
CYCLE_INTERVAL = "PT40M"  # what the job's schedule says (the sandbox's cycles are compressed)


def now():
    return datetime.now(timezone.utc)


def stamp(when=None):
    return (when or now()).strftime("%Y-%m-%dT%H:%M:%SZ")


class State:
    def __init__(self, random_seed=0):
        self.lock = threading.RLock()
        self._random = random.Random(random_seed)
        self.tenant_id = self.new_id()
        self.users = {}
        self.groups = {}
        self.service_principals = {}
        self.assignments = {}  # id -> appRoleAssignment
        self.jobs = {}  # service principal id -> job (with the sandbox's private "_target")
        self.group_links = {}  # (sp id, group id) -> {"scim_id", "members": set of user ids pushed}
        self.user_links = {}  # (sp id, user id) -> Cloudflare SCIM user id
        self.logs = []  # provisioning log entries, oldest first
        self.clients = {}  # client id -> {"secret", "roles", "name"}
        self._n = itertools.count(1)

    def new_id(self):
        return str(uuid.UUID(int=self._random.getrandbits(128), version=4))

    # ---- directory objects -------------------------------------------------------------------

    def add_user(self, upn, display_name, mail=None):
        nickname = upn.split("@")[0]
        user = {"id": self.new_id(), "displayName": display_name, "userPrincipalName": upn, "mail": mail,
                "mailNickname": nickname, "accountEnabled": True}
        self.users[user["id"]] = user
        return user

    def add_group(self, name, members=(), description=None, security=True):
        group = {"id": self.new_id(), "displayName": name, "description": description, "mailEnabled": False,
                 "mailNickname": "".join(c for c in name if c.isalnum())[:64] or "group", "securityEnabled": security,
                 "groupTypes": [], "createdDateTime": stamp(), "members": list(dict.fromkeys(members))}
        self.groups[group["id"]] = group
        return group

    def add_service_principal(self, name):
        app_id = self.new_id()
        sp = {"id": self.new_id(), "appId": app_id, "displayName": name, "accountEnabled": True,
              "servicePrincipalType": "Application", "tags": list(CUSTOM_APP_TAGS),
              "appRoles": [{"id": USER_ROLE, "displayName": "User", "value": None, "description": "User",
                            "allowedMemberTypes": ["User"], "isEnabled": True, "origin": "Application"},
                           {"id": "8774f594-1d59-4279-b9d9-59ef09a23530", "displayName": "msiam_access", "value": None,
                            "description": "msiam_access", "allowedMemberTypes": ["User"], "isEnabled": True,
                            "origin": "Application"}]}
        self.service_principals[sp["id"]] = sp
        return sp

    def add_job(self, sp, tenant_url, token):
        began = now() - timedelta(minutes=5)
        job = {"id": f"scim.{uuid.UUID(int=self._random.getrandbits(128)).hex}.{self.tenant_id.replace('-', '')}",
               "templateId": "scim",
               "schedule": {"expiration": None, "interval": CYCLE_INTERVAL, "state": "Active"},
               "status": {"code": "Active", "countSuccessiveCompleteFailures": 0, "escrowsPruned": False,
                          "lastExecution": _execution(began, "Succeeded"), "lastSuccessfulExecution": _execution(began, "Succeeded"),
                          "lastSuccessfulExecutionWithExports": _execution(began, "Succeeded"), "progress": [],
                          "quarantine": None, "steadyStateFirstAchievedTime": stamp(began),
                          "steadyStateLastAchievedTime": stamp(began), "synchronizedEntryCountByType": [],
                          "troubleshootingUrl": None},
               "synchronizationJobSettings": [],
               "_target": {"url": tenant_url, "token": token}, "_rule": self.new_id()}
        self.jobs[sp["id"]] = job
        return job

    def assign(self, sp, group, role=USER_ROLE):
        assignment = {"id": self.new_id().replace("-", "")[:43], "appRoleId": role, "createdDateTime": stamp(),
                      "deletedDateTime": None, "principalDisplayName": group["displayName"], "principalId": group["id"],
                      "principalType": "Group", "resourceDisplayName": sp["displayName"], "resourceId": sp["id"]}
        self.assignments[assignment["id"]] = assignment
        return assignment

    def assigned_groups(self, sp_id):
        """Group ids assigned to the application: the job's scope ("Sync only assigned users and groups")."""
        return [a["principalId"] for a in self.assignments.values()
                if a["resourceId"] == sp_id and a["principalType"] == "Group" and a["principalId"] in self.groups]

    def quarantine(self, sp_id, code, message):
        job = self.jobs[sp_id]
        began = stamp()
        old = job["status"].get("quarantine") or {}
        job["status"]["code"] = "Quarantine"
        job["status"]["quarantine"] = {
            "currentBegan": began, "nextAttempt": stamp(now() + timedelta(hours=1)),
            "reason": "EncounteredQuarantineException", "seriesBegan": old.get("seriesBegan", began),
            "seriesCount": int(old.get("seriesCount") or 0) + 1,
            "error": {"code": code, "message": message, "tenantActionable": True}}
        job["status"]["lastExecution"] = _execution(now(), "Failed", code, message)

    def log(self, sp_id, action, status, group=None, user=None, target=None, error=None, initiator="system"):
        source = group or user
        kind = "Group" if group else "User"
        entry = {
            "id": f"{next(self._n):08d}-{self.new_id()}", "activityDateTime": stamp(now()),
            "tenantId": self.tenant_id, "jobId": self.jobs[sp_id]["id"], "cycleId": self.new_id(),
            "changeId": self.new_id(), "durationInMilliseconds": 5, "provisioningAction": action,
            "initiatedBy": {"id": "", "displayName": "Microsoft.Azure.SyncFabric" if initiator == "system" else "vgmigrate",
                            "initiatorType": "system" if initiator == "system" else "application"},
            "provisioningStatusInfo": {"status": status, "errorInformation": None if error is None else {
                "errorCode": error[0], "reason": error[1], "additionalDetails": None, "errorCategory": "NonServiceFailure",
                "recommendedAction": None}},
            "provisioningSteps": [], "modifiedProperties": [],
            "servicePrincipal": {"id": sp_id, "displayName": self.service_principals[sp_id]["displayName"]},
            "sourceIdentity": {"id": source["id"], "displayName": source["displayName"], "identityType": kind, "details": {}},
            "sourceSystem": {"id": self.new_id(), "displayName": "Entra ID", "details": {}},
            "targetIdentity": {"id": target or "", "displayName": source["displayName"],
                               "identityType": f"urn:ietf:params:scim:schemas:core:2.0:{kind}", "details": {}},
            "targetSystem": {"id": self.new_id(), "displayName": "customappsso", "details": {}},
        }
        self.logs.append(entry)
        return entry


def _execution(when, state, code=None, message=None):
    return {"activityIdentifier": None, "countEntitled": 0, "countEntitledForProvisioning": 0, "countEscrowed": 0,
            "countEscrowedRaw": 0, "countExported": 0, "countExports": 0, "countImported": 0, "countImportedDeltas": 0,
            "countImportedReferenceDeltas": 0, "error": None if code is None else {"code": code, "message": message, "tenantActionable": True},
            "state": state, "timeBegan": stamp(when), "timeEnded": stamp(when)}


def execution(when, state, code=None, message=None):
    return _execution(when, state, code, message)
