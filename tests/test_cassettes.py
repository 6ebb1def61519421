"""Every CloudflareClient method replayed from vcrpy cassettes, with the network blocked; and a
secret scan over every cassette file.

Cassettes (`fixtures/cassettes/cloudflare/<test>.yaml`) are recorded against the in-process sandbox
(demo seed, whose account id is fixed) with the host rewritten to https://api.cloudflare.com, so a
replay looks exactly like a conversation with Cloudflare. Replays run in record mode "none" (the
pytest-recording default): an unrecorded request fails the test, and every recorded one must be
played, which pins the number of calls each method makes.

Re-record: `python tests/record_cassettes.py` (see its docstring).
"""

import json
import re
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from migrate.cloudflare import CloudflareClient
from migrate.errors import CloudflareError, TokenError
from migrate.http import RateLimiter

REPO = Path(__file__).resolve().parents[1]
CASSETTE_ROOT = REPO / "fixtures" / "cassettes"
CASSETTE_DIR = CASSETTE_ROOT / "cloudflare"
API = "https://api.cloudflare.com/client/v4"
PINNED_ACCOUNT = "34c902bf18fbfbb0ab1e8f6a68c3c00b"  # the demo seed's fixed account id
OTHER_ACCOUNT = "ffffffffffffffffffffffffffffffff"
REPLAY_TOKEN = "replay"  # replays need a token-shaped value; nothing checks it
SINCE = "2020-01-01T00:00:00Z"

# Every replay blocks real sockets; recording (any --record-mode but "none") is let through.
pytestmark = pytest.mark.block_network
replay = pytest.mark.vcr

# -- scrubbing (used while recording, and again on each replayed request before matching) -------

REQUEST_HEADERS_KEPT = {"content-type"}
RESPONSE_HEADERS_KEPT = {"content-type", "cf-ray", "ratelimit", "ratelimit-policy", "retry-after"}
SECRET_KEYS = re.compile(r"(^|_)(token|secret|password|api_?key|authorization|access_token|refresh_token)$", re.I)
LOOPBACK = re.compile(r"http://(?:127\.0\.0\.1|localhost|\[::1\]):\d+")
REDACTED = "REDACTED"
DOCUMENTATION_IP = "192.0.2.1"  # RFC 5737: audit entries carry the caller's IP, which is nobody's business
_recording_secrets = set()  # the live sandbox token while recording


def _scrub_json(value):
    if isinstance(value, dict):
        return {k: _scrub_field(k, v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub_json(v) for v in value]
    if isinstance(value, str) and value in _recording_secrets:
        return REDACTED
    return value


def _scrub_field(key, value):
    if isinstance(value, str) and SECRET_KEYS.search(key):
        return REDACTED
    if isinstance(value, str) and key in ("ip", "ip_address"):  # v1 actor.ip, v2 actor.ip_address
        return DOCUMENTATION_IP
    return _scrub_json(value)


def _scrub_text(text):
    for secret in _recording_secrets:
        text = text.replace(secret, REDACTED)
    return LOOPBACK.sub("https://api.cloudflare.com", text)


def _scrub_body(body):
    if not body:
        return body
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    try:
        text = json.dumps(_scrub_json(json.loads(text)), separators=(",", ":"))
    except ValueError:
        pass
    return _scrub_text(text).encode("utf-8")


def scrub_request(request):
    parts = urlsplit(request.uri)
    if LOOPBACK.match(f"{parts.scheme}://{parts.netloc}"):
        request.uri = urlunsplit(("https", "api.cloudflare.com", parts.path, parts.query, ""))
    request.headers = {k: v for k, v in request.headers.items() if k.lower() in REQUEST_HEADERS_KEPT}
    request.body = _scrub_body(request.body)
    return request


def scrub_response(response):
    response["headers"] = {k: v for k, v in response["headers"].items() if k.lower() in RESPONSE_HEADERS_KEPT}
    response["body"]["string"] = _scrub_body(response["body"]["string"])
    return response


@pytest.fixture(scope="module")
def vcr_cassette_dir():
    return str(CASSETTE_DIR)


@pytest.fixture(scope="module")
def vcr_config():
    return {
        "match_on": ["method", "scheme", "host", "port", "path", "query", "body"],
        "before_record_request": scrub_request,
        "before_record_response": scrub_response,
        "decode_compressed_response": True,
        "record_on_exception": False,
    }


@pytest.fixture
def sandbox_options():
    return {}


@pytest.fixture
def cf(record_mode, clock, sandbox_options):
    """A client for the pinned account: on api.cloudflare.com (replay) or on a fresh sandbox (recording).

    `cf.sandbox` is the live sandbox while recording, else None.
    """
    kwargs = {"sleep": clock.sleep, "limiter": RateLimiter(clock=clock, sleep=clock.sleep)}
    if record_mode == "none":
        client = CloudflareClient.connect(API, REPLAY_TOKEN, PINNED_ACCOUNT, **kwargs)
        client.sandbox = None
        yield client
        return
    from migrate.sandbox import Sandbox
    from migrate.sandbox.seeds import demo_seed

    with Sandbox(seed=demo_seed(), rate_limit=(1200, 300), **sandbox_options) as sb:
        assert sb.account_id == PINNED_ACCOUNT, "the demo seed's account id changed: update PINNED_ACCOUNT"
        _recording_secrets.add(sb.token)
        client = CloudflareClient.connect(sb.base_url, sb.token, sb.account_id, **kwargs)
        client.sandbox = sb
        try:
            yield client
        finally:
            _recording_secrets.discard(sb.token)


@pytest.fixture(autouse=True)
def every_recorded_call_is_played(request, record_mode):
    yield
    cassette = request.getfixturevalue("vcr") if request.node.get_closest_marker("vcr") else None
    if cassette is not None and record_mode == "none":
        assert cassette.all_played, f"{len(cassette.data) - cassette.play_count} recorded calls were not made"


# -- replays -------------------------------------------------------------------------------------


@replay
def test_token_and_account(cf):
    token = cf.verify_token()
    assert token["status"] == "active" and token["kind"] == "account" and len(token["id"]) == 32
    account = cf.account()
    assert account["id"] == PINNED_ACCOUNT and account["name"] == "Acme Corp"
    assert [a["id"] for a in cf.list_accounts()] == [PINNED_ACCOUNT]
    assert cf.last_ray and cf.last_status == 200


@replay
@pytest.mark.parametrize("sandbox_options", [{"token_kind": "user"}], ids=["user-token"])
def test_user_token_falls_back_to_the_user_endpoint(cf):
    assert cf.verify_token()["kind"] == "user"


@replay
def test_account_the_token_cannot_see(cf):
    other = CloudflareClient(cf.http, OTHER_ACCOUNT)
    with pytest.raises(TokenError, match=f"cannot see account {OTHER_ACCOUNT}"):
        other.account()


@replay
def test_catalogue_listings_cost_one_call_each(cf):
    permission_groups = list(cf.permission_groups())
    assert len(permission_groups) == 101
    assert any(pg["name"] == "Super Administrator - All Privileges" for pg in permission_groups)
    assert len(list(cf.roles())) == 71
    members = list(cf.members())
    assert len(members) == 47 and all(m["email"] for m in members)
    # Every scope is keyed by the account; zones are its objects (never a zone key with "*").
    rgs = list(cf.resource_groups())
    assert len(rgs) == 6 and all(rg["scope"]["key"] == f"com.cloudflare.api.account.{PINNED_ACCOUNT}" for rg in rgs)
    assert sum(any(o["key"].startswith("com.cloudflare.api.account.zone.") for o in rg["scope"]["objects"]) for rg in rgs) == 3
    assert len(list(cf.user_groups())) == 3
    # one call per page (3 of permission groups and 2 of roles at 50 a page, one of each other
    # listing): all-played plus no extra recorded calls pins it
    assert cf.http.calls == 3 + 2 + 1 + 1 + 1


@replay
def test_one_member_and_one_missing(cf):
    first = next(iter(cf.members()))
    member = cf.member(first["id"])
    assert member["id"] == first["id"] and member["email"] == first["email"] and "roles" in member
    with pytest.raises(CloudflareError) as err:
        cf.member("0" * 32)
    assert err.value.status == 404


@replay
def test_resource_group_lifecycle(cf):
    scope = f"com.cloudflare.api.account.{PINNED_ACCOUNT}"
    created = cf.create_resource_group("vgmigrate account-wide", scope)
    assert created["scope"] == {"key": scope, "objects": [{"key": "*"}]}
    assert [rg["id"] for rg in cf.resource_groups(name="vgmigrate account-wide")] == [created["id"]]
    assert cf.delete_resource_group(created["id"]) == {"id": created["id"]}
    assert cf.resource_groups(name="vgmigrate account-wide") == []


@replay
def test_user_group_lifecycle(cf):
    admin = next(pg for pg in cf.permission_groups() if pg["name"] == "Administrator")
    rg = cf.create_resource_group("whole account", f"com.cloudflare.api.account.{PINNED_ACCOUNT}")
    policy = {"access": "allow", "permission_groups": [{"id": admin["id"]}], "resource_groups": [{"id": rg["id"]}]}

    group = cf.create_user_group("Administrators", policies=[policy])
    gid = group["id"]
    assert [p["permission_groups"][0]["id"] for p in group["policies"]] == [admin["id"]]
    assert cf.user_group(gid)["name"] == "Administrators"
    assert [g["id"] for g in cf.user_groups(name="Administrators")] == [gid]
    assert gid in [g["id"] for g in cf.user_groups(fuzzy_name="ministrat")]

    renamed = cf.update_user_group(gid, name="Account Administrators")
    assert renamed["name"] == "Account Administrators" and len(renamed["policies"]) == 1
    assert cf.update_user_group(gid, policies=[])["policies"] == []

    member_ids = [m["id"] for m in cf.members()][:3]
    added = cf.add_user_group_members(gid, member_ids[:2])
    assert sorted(m["id"] for m in added) == sorted(member_ids[:2])
    assert sorted(m["id"] for m in cf.user_group_members(gid)) == sorted(member_ids[:2])
    replaced = cf.replace_user_group_members(gid, member_ids[1:])
    assert sorted(m["id"] for m in replaced) == sorted(member_ids[1:])
    assert cf.remove_user_group_member(gid, member_ids[1])["id"] == member_ids[1]
    assert [m["id"] for m in cf.user_group_members(gid)] == [member_ids[2]]

    assert cf.delete_user_group(gid) == {"id": gid}
    assert list(cf.user_groups(name="Account Administrators")) == []
    cf.delete_resource_group(rg["id"])


@replay
def test_scim_reads(cf):
    groups = list(cf.scim_groups())
    assert len(groups) == 77 + 1  # the system groups and the SCIM-pushed user group
    virtual = [g for g in groups if g["displayName"].lower().startswith("cf-")]
    assert virtual and all(g["id"].startswith("cloudflare-v1-") for g in virtual)
    name = virtual[0]["displayName"]
    assert [g["id"] for g in cf.scim_groups(filter=f'displayName eq "{name}"')] == [virtual[0]["id"]]
    assert cf.scim_group(virtual[0]["id"])["displayName"] == name

    users = list(cf.scim_users())
    assert len(users) == 30
    user = users[0]
    assert [u["id"] for u in cf.scim_users(filter=f'userName eq "{user["userName"]}"')] == [user["id"]]
    assert cf.scim_user(user["id"])["userName"] == user["userName"]


@replay
def test_audit_logs_show_our_writes(cf):
    gid = cf.create_user_group("Audited")["id"]
    cf.delete_user_group(gid)
    entries = list(cf.audit_logs(since=SINCE))
    assert len(entries) >= 2
    assert {e["resource"]["id"] for e in entries} >= {gid}


@replay
def test_audit_logs_v2_carry_the_cf_ray_of_each_write(cf):
    gid = cf.create_user_group("Audited v2")["id"]
    ray = cf.last_ray
    cf.delete_user_group(gid)
    entries = list(cf.audit_logs_v2(SINCE, "2999-01-01T00:00:00Z"))
    created = next(e for e in entries if e["resource"]["id"] == gid and e["action"]["type"] == "create")
    assert ray.startswith(created["raw"]["cf_ray_id"])


@replay
def test_api_errors_are_typed(cf):
    with pytest.raises(CloudflareError) as err:
        cf.user_group("0" * 32)
    assert err.value.status == 404 and err.value.codes and err.value.ray
    with pytest.raises(CloudflareError) as err:
        cf.create_user_group("CF Reserved")
    assert 400 <= err.value.status < 500
    with pytest.raises(CloudflareError) as err:
        cf.scim_group("no-such-group")
    assert err.value.status == 404 and "404" in str(err.value)


@replay
def test_rate_limited_call_waits_retry_after(cf, clock):
    if cf.sandbox is not None:
        cf.sandbox.inject("GET", r"/roles$", "429")
    assert len(list(cf.roles())) == 71
    assert clock.sleeps == [1.0]  # the recorded Retry-After, honoured on replay too
    assert cf.http.calls == 2 + 1  # the 429, then both pages of roles


def test_every_client_method_is_covered_by_a_replay():
    import inspect

    public = {name for name, member in vars(CloudflareClient).items()
              if callable(member) and not name.startswith("_") and name != "connect"
              and not name.endswith(("_path", "_url"))}  # URL builders send nothing
    replay_sources = "".join(inspect.getsource(fn) for name, fn in globals().items()
                             if name.startswith("test_") and any(m.name == "vcr" for m in getattr(fn, "pytestmark", [])))
    assert sorted(n for n in public if f".{n}(" not in replay_sources) == []


# -- secret scan over every cassette, whoever recorded it ----------------------------------------

SECRET_PATTERNS = {
    "bearer header value": re.compile(r"Bearer\s", re.I),
    "authorization header": re.compile(r"authorization", re.I),
    "set-cookie header": re.compile(r"set-cookie", re.I),
    "global API key header": re.compile(r"x-auth-key", re.I),
    # secrets.token_urlsafe(30) (the sandbox token) and Cloudflare API tokens are 40 url-safe chars
    "40-char token-like string": re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{40}(?![A-Za-z0-9_-])"),
    "account-owned token prefix": re.compile(r"\bcfat_[A-Za-z0-9_-]{8,}"),
}


LOOPBACK_TEXT = re.compile(r"127\.0\.0\.1|localhost|\[::1\]")


def find_secrets(text):
    """(pattern name, match) for each secret-looking thing in a cassette's text."""
    return [(name, m.group(0)) for name, pattern in SECRET_PATTERNS.items() for m in pattern.finditer(text)]


def all_cassettes():
    return sorted(p for p in CASSETTE_ROOT.rglob("*") if p.is_file() and p.suffix in (".yaml", ".yml", ".json"))


def test_secret_scan_catches_what_it_must():
    leaked = "a" * 10 + "B-_9" * 7 + "z" * 2  # 40 url-safe chars
    assert [n for n, _ in find_secrets(f"Authorization: Bearer {leaked}")] == [
        "bearer header value", "authorization header", "40-char token-like string"]
    assert find_secrets("set-cookie: __cf_bm=x") and find_secrets("token: cfat_abcdef0123456")
    # ids, SCIM tags and rays are not secrets
    assert find_secrets(f"{PINNED_ACCOUNT} cloudflare-v1-{PINNED_ACCOUNT} 8f1e2d3c4b5a6978-SBX") == []


def test_cassettes_exist_for_every_replay():
    names = {p.stem for p in CASSETTE_DIR.glob("*.yaml")}
    replays = [name for name, fn in globals().items() if name.startswith("test_") and hasattr(fn, "pytestmark")
               and any(m.name == "vcr" for m in fn.pytestmark)]
    assert replays
    missing = [n for n in replays if not any(c == n or c.startswith(n + "[") for c in names)]
    assert missing == [], "record them: python tests/record_cassettes.py"


def test_no_cassette_holds_a_secret_or_a_loopback_address():
    # Globbed at run time (not collection time) so a recording run scans what it just wrote.
    cassettes = all_cassettes()
    assert cassettes, "no cassettes found: python tests/record_cassettes.py"
    hits = {}
    for path in cassettes:
        text = path.read_text(encoding="utf-8")
        found = find_secrets(text) + [("loopback address", m.group(0)) for m in LOOPBACK_TEXT.finditer(text)]
        if found:
            hits[str(path.relative_to(CASSETTE_ROOT))] = found
    assert hits == {}
