"""The API token is written nowhere: not in the inventory (journal `error` column included), plan
files, exports, logs (`--debug` stderr), cassettes, stdout or stderr, on success and on every error
path, even when the API quotes the token back in an error body (v4 JSON, SCIM or plain text; 400,
403, 429, 5xx)."""

import gc
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine_support import env_for, open_inventory
from migrate.cli import cli
from migrate.cloudflare import CloudflareClient
from migrate.errors import CloudflareError, OutcomeUnknown
from migrate.http import HttpClient, RateLimiter
from migrate.sandbox import Sandbox
from migrate.sandbox.routing import Response, failures
from migrate.sandbox.seeds import demo_seed

TOKEN = "vgmSECRETtoken_7f3a9c2e5b1d4086"  # distinctive: any occurrence anywhere is a leak
ACCOUNT = "34c902bf18fbfbb0ab1e8f6a68c3c00b"
ROOT = Path(__file__).resolve().parents[1]


def echoing_body(shape, status):
    """An error body that quotes the token back, in each shape Cloudflare answers with."""
    said = f"invalid request header Authorization: Bearer {TOKEN}"
    if shape == "v4":
        return "application/json", json.dumps({"success": False, "result": None, "messages": [{"code": 1, "message": said}],
                                               "errors": [{"code": 10000, "message": said, "error_chain": [{"code": 6111, "message": said}]}]})
    if shape == "scim":
        return "application/scim+json", json.dumps({"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                                                    "status": str(status), "scimType": "invalidValue", "detail": said})
    return "text/plain", f"{status} error: {said}\n"


class Stub:
    """A test-local HTTP server answering every request with one canned response."""

    def __init__(self, status, content_type, body):
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                stub.requests += 1
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Retry-After", "0")
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _answer

        self.requests = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)

    def __enter__(self):
        self.thread.start()
        return f"http://127.0.0.1:{self.server.server_address[1]}/client/v4"

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("shape", ["v4", "scim", "plain"])
@pytest.mark.parametrize("status", [400, 403, 429, 500, 503])
@pytest.mark.parametrize("call", ["members", "scim_groups", "create_user_group"])
def test_an_error_body_quoting_the_token_is_redacted(shape, status, call):
    content_type, body = echoing_body(shape, status)
    with Stub(status, content_type, body) as base_url:
        http = HttpClient(base_url, TOKEN, max_retries=1, backoff_base=0, limiter=RateLimiter(limit=None), sleep=lambda s: None)
        client = CloudflareClient(http, ACCOUNT)
        send = {
            "members": lambda: list(client.members()),
            "scim_groups": lambda: list(client.scim_groups()),
            "create_user_group": lambda: client.create_user_group("DNS", []),
        }[call]
        with pytest.raises((CloudflareError, OutcomeUnknown)) as caught:
            send()
    err = caught.value
    seen = [str(err), repr(err), repr(err.args), repr(getattr(err, "errors", "")), repr(getattr(err, "messages", "")),
            str(getattr(err, "cause", ""))]
    assert not [text for text in seen if TOKEN in text]
    if isinstance(err, CloudflareError) and shape != "plain":
        assert "***" in str(err)  # the message is kept, only the token is cut out


# --- every command, end to end ------------------------------------------------------------------


@pytest.fixture
def sandbox_with_token():
    sb = Sandbox(seed=demo_seed(), token=TOKEN, rate_limit=None)
    sb.start()
    yield sb
    sb.stop()


def echo_token_on(sb, monkeypatch, method, pattern, status, shape):
    """The sandbox answers matching requests with an error quoting the token (patched in here; the
    sandbox itself never echoes credentials)."""
    import re

    route = sb._route
    said = f"token {TOKEN} may not do this"

    def patched(request, api_path, token_valid, ray=""):
        if request.method == method and re.search(pattern, api_path or ""):
            if shape == "v4":
                return failures(status, [{"code": 10000, "message": said, "error_chain": [{"code": 1, "message": said}]}])
            if shape == "scim":
                return Response(status, {"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": str(status), "detail": said},
                                "application/scim+json")
            return Response(status, said)  # a bare JSON string: read as text
        return route(request, api_path, token_valid, ray)

    monkeypatch.setattr(sb, "_route", patched)


def test_no_command_writes_or_prints_the_token(sandbox_with_token, tmp_path, monkeypatch):
    sb = sandbox_with_token
    db, plan, out = tmp_path / "inv.db", tmp_path / "plan.json", tmp_path / "export"
    printed = []

    def vg(*args, expect=None, debug=True):
        args = [str(a) for a in args]
        result = CliRunner().invoke(cli, (["--debug"] if debug else []) + args, env=env_for(sb, db))
        if expect is not None:
            assert result.exit_code == expect, f"{args}: {result.exit_code}\n{result.output}"
        printed.extend([result.output, result.stderr, str(result.exception or ""), repr(result.exception)])
        return result

    vg("scan", expect=0)
    vg("inventory", expect=0)
    vg("inventory", "--json", expect=0)
    vg("plan", "--out", plan, "--on-existing", "suffix", expect=0)
    for fmt in ("table", "markdown", "html", "json"):
        vg("show", plan, "--format", fmt, expect=0)
        vg("plan", "--on-existing", "suffix", "--format", fmt, expect=0)
    vg("rehearse", plan, expect=0)
    vg("status", expect=0)

    # error paths: the API quotes the token back, in every shape and status
    with monkeypatch.context() as m:
        echo_token_on(sb, m, "POST", r"/iam/user_groups$", 400, "v4")
        vg("apply", plan, "--yes", debug=False, expect=1)  # the journal's error column gets the message
        vg("apply", plan, "--yes", expect=1)
    with monkeypatch.context() as m:
        echo_token_on(sb, m, "GET", r"/scim/v2/Groups", 403, "scim")
        vg("scan", debug=False, expect=1)
        vg("scan", expect=1)
    with monkeypatch.context() as m:
        echo_token_on(sb, m, "GET", r"/members$", 429, "plain")
        m.setattr("migrate.http.HttpClient.backoff", lambda self, attempt: 0.0)
        vg("scan", debug=False, expect=1)
    with monkeypatch.context() as m:
        echo_token_on(sb, m, "GET", r"/iam/user_groups$", 503, "v4")
        m.setattr("migrate.http.HttpClient.backoff", lambda self, attempt: 0.0)
        vg("verify", debug=False, expect=1)
    monkeypatch.undo()
    errors = [a["error"] for r in open_inventory(db).runs("apply") for a in open_inventory(db).actions(r["id"]) if a["error"]]
    assert errors and all("***" in e for e in errors)  # the message was kept, the token cut out

    vg("apply", plan, "--yes", expect=0)
    vg("verify", expect=0)
    vg("verify", "--json", expect=0)
    vg("history", expect=0)
    vg("status", expect=0)
    for fmt in ("csv", "json", "jsonl", "markdown", "html"):
        vg("export", "--format", fmt, "--out", out / fmt, "--with-audit-log", expect=0)
    vg("rollback", "--dry-run", expect=0)
    vg("rollback", "--yes", expect=0)
    vg("unlock", "apply-nonesuch", "--yes", expect=1)
    vg("--token", TOKEN + "x", "scan", expect=1)  # a wrong token that contains the right one
    vg("--token", TOKEN + " x", "scan", expect=1)  # a malformed one
    vg("--account", "not-an-account", "scan", debug=False, expect=2)

    leaks = [text[:200] for text in printed if TOKEN in text]
    assert leaks == []
    gc.collect()  # close inventories left open, so no WAL file is merged away while being read
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) > 10 and any(p.name.endswith("-wal") or p.suffix == ".db" for p in files)
    assert [str(p) for p in files if TOKEN.encode() in p.read_bytes()] == []


def test_cassettes_carry_no_credentials():
    cassettes = sorted((ROOT / "fixtures" / "cassettes").rglob("*.yaml"))
    assert cassettes
    for path in cassettes:
        text = path.read_text()
        assert TOKEN not in text
        for line in text.splitlines():
            if "authorization" in line.lower() or "bearer" in line.lower():
                assert "REDACTED" in line or "***" in line or "<" in line, f"{path.name}: {line.strip()}"
