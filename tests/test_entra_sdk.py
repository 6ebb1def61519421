"""The official SDK (`msgraph-sdk`) drives the Entra emulator: every call vgmigrate makes, each
answer deserialised into the SDK's models with nothing left over (a field the SDK does not know
lands in `additional_data`, which must stay empty), and Graph's error shape read as ODataError.
Nothing may leave loopback: connections elsewhere are refused for the whole test."""

import asyncio
import socket
from urllib.parse import urlsplit

import pytest

msgraph = pytest.importorskip("msgraph")

import httpx  # noqa: E402
from kiota_abstractions.authentication import (  # noqa: E402
    AccessTokenProvider, AllowedHostsValidator, BaseBearerTokenAuthenticationProvider,
)
from kiota_abstractions.serialization import Parsable  # noqa: E402
from msgraph import GraphRequestAdapter, GraphServiceClient  # noqa: E402
from msgraph.generated.groups.groups_request_builder import GroupsRequestBuilder  # noqa: E402
from msgraph.generated.models.app_role_assignment import AppRoleAssignment  # noqa: E402
from msgraph.generated.models.group import Group  # noqa: E402
from msgraph.generated.models.o_data_errors.o_data_error import ODataError  # noqa: E402
from msgraph.generated.models.synchronization_job_application_parameters import SynchronizationJobApplicationParameters  # noqa: E402
from msgraph.generated.models.synchronization_job_subject import SynchronizationJobSubject  # noqa: E402
from msgraph.generated.models.synchronization_linked_objects import SynchronizationLinkedObjects  # noqa: E402
from msgraph.generated.models.user import User  # noqa: E402
from msgraph.generated.service_principals.item.synchronization.jobs.item.provision_on_demand.provision_on_demand_post_request_body import (  # noqa: E402,E501
    ProvisionOnDemandPostRequestBody,
)

from migrate.sandbox.entra import FULL_ROLES, EntraSandbox  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the SDK's own request builders warn

# What an OData answer carries about itself rather than the entity (kept by kiota in additional_data).
ODATA_ANNOTATIONS = {"@odata.context"}


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    real = socket.create_connection

    def guarded(address, *args, **kwargs):
        if address[0] not in ("127.0.0.1", "localhost", "::1"):
            raise OSError(f"the SDK tried to reach {address[0]}: only loopback is allowed here")
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", guarded)


class EmulatorTokens(AccessTokenProvider):
    """Client credentials against the emulator's token endpoint, as azure-identity would send them."""

    def __init__(self, env):
        self.env = env

    async def get_authorization_token(self, uri, additional_authentication_context=None):
        async with httpx.AsyncClient() as client:
            answer = await client.post(f"{self.env['ENTRA_LOGIN_URL']}/{self.env['ENTRA_TENANT_ID']}/oauth2/v2.0/token", data={
                "grant_type": "client_credentials", "client_id": self.env["ENTRA_CLIENT_ID"],
                "client_secret": self.env["ENTRA_CLIENT_SECRET"], "scope": "https://graph.microsoft.com/.default"})
        answer.raise_for_status()
        return answer.json()["access_token"]

    def get_allowed_hosts_validator(self):
        return AllowedHostsValidator([urlsplit(self.env["ENTRA_GRAPH_URL"]).netloc])


def sdk_client(emulator):
    env = emulator.environment()
    adapter = GraphRequestAdapter(BaseBearerTokenAuthenticationProvider(EmulatorTokens(env)))
    adapter.base_url = env["ENTRA_GRAPH_URL"]
    return GraphServiceClient(request_adapter=adapter)


def leftovers(value, where="answer"):
    """Every field the SDK did not map, as "where.field" strings."""
    found = []
    if isinstance(value, Parsable):
        extra = set(getattr(value, "additional_data", None) or {}) - ODATA_ANNOTATIONS
        found += [f"{where}.{k}" for k in sorted(extra)]
        for name, item in vars(value).items():
            if name != "additional_data" and not name.startswith("_"):
                found += leftovers(item, f"{where}.{name}")
    elif isinstance(value, list):
        for n, item in enumerate(value):
            found += leftovers(item, f"{where}[{n}]")
    return found


def run(coroutine):
    return asyncio.run(coroutine)


@pytest.fixture
def entra(sandbox):
    with EntraSandbox(cloudflare=sandbox) as emulator:
        yield emulator


def test_the_sdk_reads_groups_members_and_pages_without_unknown_fields(entra):
    graph = sdk_client(entra)

    async def scenario():
        config = GroupsRequestBuilder.GroupsRequestBuilderGetRequestConfiguration(
            query_parameters=GroupsRequestBuilder.GroupsRequestBuilderGetQueryParameters(
                filter="startswith(displayName,'CF-')", top=3))
        page = await graph.groups.get(request_configuration=config)
        groups, answers = list(page.value), [page]
        while page.odata_next_link:
            page = await graph.groups.with_url(page.odata_next_link).get()
            groups += page.value
            answers.append(page)
        members = await graph.groups.by_group_id(groups[0].id).members.get()
        return groups, answers + [members], members

    groups, answers, members = run(scenario())
    with entra.state.lock:
        want = sorted(g["displayName"] for g in entra.state.groups.values() if g["displayName"].lower().startswith("cf-"))
    assert sorted(g.display_name for g in groups) == want and len(answers) > 2
    assert members.value and all(isinstance(m, User) and m.user_principal_name for m in members.value)
    assert leftovers(answers) == []


def test_the_sdk_creates_a_group_assigns_it_and_provisions_it_on_demand(entra):
    graph = sdk_client(entra)
    sp = entra.service_principal_id
    with entra.state.lock:
        users = [u["id"] for u in entra.state.users.values()][:3]

    async def scenario():
        body = Group(display_name="SDK Readers", mail_enabled=False, mail_nickname="sdkreaders", security_enabled=True,
                     description='{"vgmigrate":{}}',
                     additional_data={"members@odata.bind": [f"https://graph.microsoft.com/v1.0/directoryObjects/{u}" for u in users]})
        group = await graph.groups.post(body)
        roles = (await graph.service_principals.by_service_principal_id(sp).get()).app_roles
        assignment = await graph.service_principals.by_service_principal_id(sp).app_role_assigned_to.post(
            AppRoleAssignment(principal_id=group.id, resource_id=sp, app_role_id=roles[0].id))
        assigned = await graph.service_principals.by_service_principal_id(sp).app_role_assigned_to.get()
        jobs = await graph.service_principals.by_service_principal_id(sp).synchronization.jobs.get()
        job = jobs.value[0]
        schema = await graph.service_principals.by_service_principal_id(sp).synchronization.jobs.by_synchronization_job_id(job.id).schema.get()
        subject = SynchronizationJobSubject(object_id=group.id, object_type_name="Group", links=SynchronizationLinkedObjects(
            members=[SynchronizationJobSubject(object_id=u, object_type_name="User") for u in users]))
        result = await graph.service_principals.by_service_principal_id(sp).synchronization.jobs.by_synchronization_job_id(job.id) \
            .provision_on_demand.post(ProvisionOnDemandPostRequestBody(parameters=[SynchronizationJobApplicationParameters(
                rule_id=schema.synchronization_rules[0].id, subjects=[subject])]))
        await asyncio.to_thread(entra.settle)  # the push runs on the emulator's worker, after the answer
        entries = await graph.audit_logs.provisioning.get()
        return group, assignment, assigned, jobs, schema, result, entries

    group, assignment, assigned, jobs, schema, result, entries = run(scenario())
    assert str(assignment.principal_id) == group.id and any(str(a.principal_id) == group.id for a in assigned.value)
    assert jobs.value[0].status.code == "Active" and result.value
    assert any(e.source_identity.id == group.id for e in entries.value)
    assert leftovers([group, assignment, assigned, jobs, schema, result, entries]) == []


def test_the_sdk_reads_graph_errors_as_odata_errors(sandbox):
    with EntraSandbox(cloudflare=sandbox, roles=FULL_ROLES - {"AuditLog.Read.All"}) as emulator:
        graph = sdk_client(emulator)

        async def denied():
            await graph.audit_logs.provisioning.get()

        with pytest.raises(ODataError) as err:
            run(denied())
    assert err.value.response_status_code == 403 and err.value.error.code == "Authorization_RequestDenied"
    assert leftovers(err.value.error) == []


def test_a_field_the_sdk_does_not_know_is_caught():
    assert leftovers([Group(id="g", additional_data={"membersCount": 3, "@odata.context": "x"})]) == ["answer[0].membersCount"]
