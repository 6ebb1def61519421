"""Cloudflare REST (v4 envelope) and SCIM v2 client: typed methods, pagination, typed errors.

Listings ask for the largest page each endpoint allows and stop on the last page without an extra
request, so a listing of n objects costs ceil(n / per_page) calls (one when empty). Once the first
page says how many there are (v4 `result_info.total_count`/`total_pages`, SCIM `totalResults`), the
other pages are fetched concurrently, `parallel` at a time under the shared rate limiter, and
yielded in page order: the same items in the same order as one page at a time.
"""

from __future__ import annotations

import datetime as _dt
import math
import threading
from concurrent.futures import CancelledError, ThreadPoolExecutor
from urllib.parse import quote

from .errors import CloudflareError, TokenError
from .iam import WHOLE_ACCOUNT
from .http import HttpClient

# Largest per_page each endpoint accepts (openapi-subset.json).
PER_PAGE_ACCOUNTS = 50
PER_PAGE_PERMISSION_GROUPS = 50
PER_PAGE_ROLES = 50
PER_PAGE_MEMBERS = 50
PER_PAGE_USER_GROUPS = 500
PER_PAGE_USER_GROUP_MEMBERS = 500
PER_PAGE_AUDIT_LOGS = 1000
PER_PAGE_AUDIT_LOGS_V2 = 1000  # `limit`: no published maximum (API-NOTES 9); the sandbox allows 1000
SCIM_PAGE_SIZE = 100
DEFAULT_PARALLEL = 8  # requests in flight at once; `apply`, `verify` and `rollback` take --parallel

# Statuses with which an endpoint says "not for this token / not this account".
_TOKEN_REJECTED = frozenset({400, 401, 403, 404})


def _segment(value):
    return quote(str(value), safe="")


def _json_or_none(response):
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return None


def _timestamp(value):
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.timezone.utc)
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, _dt.date):
        return value.isoformat()
    return value


def v4_is_last_page(result_info, page, seen, page_len, per_page):
    """Whether a v4 page is the last one, judged from `result_info` or, failing that, a short page."""
    info = result_info or {}
    total_count = info.get("total_count")
    if isinstance(total_count, int):
        return seen >= total_count
    total_pages = info.get("total_pages")
    if isinstance(total_pages, int):
        return page >= total_pages
    effective = info.get("per_page") if isinstance(info.get("per_page"), int) else per_page
    return page_len < effective


def scim_is_last_page(body, next_index, page_len, count):
    total = body.get("totalResults")
    if isinstance(total, int):
        return next_index > total
    return page_len < count


def run_parallel(fn, items, parallel):
    """[fn(item) for item in items], `parallel` at a time, results in the order of `items`.

    The first exception is raised once the calls already running have finished; nothing new starts
    after it. Its own pool: tasks may read pages through the client's page pool without deadlock.
    """
    items = list(items)
    if parallel <= 1 or len(items) <= 1:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(parallel, len(items)), thread_name_prefix="vgmigrate-task") as pool:
        futures = []
        failed = threading.Event()

        def guarded(item):
            if failed.is_set():
                return None
            try:
                return fn(item)
            except BaseException:
                failed.set()
                raise

        futures = [pool.submit(guarded, item) for item in items]
        return [future.result() for future in futures]


AHEAD_ITEMS = 1600  # 32 pages of 50 members: the scan's reader keeps 8 workers busy


class Pages:
    """One listing: an iterator over its items, page by page in order.

    The first page is fetched on the first `next()`, or at once by `start()` so that several
    listings' first round trips overlap. When it says how many pages there are, the rest are
    fetched concurrently, a bounded number ahead of the reader, and yielded in order. A started
    listing fetches ahead as soon as its first page arrives, not when it is first read: the scan
    reads its listings one after the other, and the later ones were idle until then.
    Without a total, pages are read one after the other until a short or empty page.
    """

    def __init__(self, client, fetch, plan, page_size):
        self._client = client
        self._fetch = fetch  # page number (1-based) -> (items, body)
        self._plan = plan  # (first page's body, its items) -> number of pages, or None if unknown
        self._first = None
        self._iter = None
        # Pages fetched but not yet read: enough that the workers stay busy while a slow reader (the
        # scan staging members) works on a page, few enough to bound memory when several listings are
        # read at once (verify's groups): `parallel` pages, or AHEAD_ITEMS items if that is more.
        self._ahead = max(1, client.parallel, AHEAD_ITEMS // max(1, page_size))
        self._lock = threading.Lock()  # the reader and the pool's threads (done callbacks) share what follows
        self._count = _UNKNOWN
        self._pending = {}  # page number -> Future
        self._next_page = 2  # the first page not yet asked for
        self._reading = 1  # the page the reader is on
        self._second_read = False  # page 2 came back with items: the totals can be trusted
        self._closed = False

    def start(self):
        if self._first is None:
            self._first = self._client._submit(self._fetch, 1)
            self._first.add_done_callback(self._after_page)
        return self

    def wait_first_page(self):
        """Wait for a started listing's first page; raises its error now rather than when read."""
        self._first.result()

    def __iter__(self):
        return self

    def __next__(self):
        if self._iter is None:
            self._iter = self._walk()
        return next(self._iter)

    def close(self):
        if self._iter is not None:
            self._iter.close()
        self.cancel()

    def cancel(self):
        """Drop the pages asked for ahead and not yet sent (another thread may be reading: its next
        page then raises CancelledError)."""
        with self._lock:
            self._closed = True
            pending, self._pending = list(self._pending.values()), {}
        for future in pending:
            future.cancel()

    def calls_left(self):
        """Pages of this listing not fetched yet (asked for and still waiting, for the rate limit
        say, or not asked for yet); None when the first page has not said how many there are, or
        will not. What progress lines estimate the time left from."""
        with self._lock:
            if self._closed:  # read to the end, or cancelled
                return 0
            if not isinstance(self._count, int):
                return 1 if self._first is not None and not self._first.done() else None
            waiting = sum(1 for future in self._pending.values() if not future.done())
            return max(0, self._count - (self._next_page - 1)) + waiting

    def _walk(self):
        client = self._client
        items, body, total = (self._first.result() if self._first is not None else self._fetch(1))
        client._local.list_total = total
        count = self._planned(body, items)
        if count is None:  # the server did not say: one page after the other
            yield from items
            page = 1
            while not self._last(body, items, page):
                page += 1
                items, body, total = self._fetch(page)
                client._local.list_total = total
                yield from items
            client._local.list_total = None
            return
        try:
            yield from items
            for page in range(2, count + 1):
                with self._lock:
                    self._reading = page
                    if page > 2:
                        self._second_read = True
                    second = self._ask_ahead()
                    future = self._pending.pop(page, None)
                if future is None:
                    raise CancelledError(f"listing cancelled before page {page}")
                self._when_second_arrives(second)
                items, body, _ = future.result()
                client._local.list_total = total
                yield from items
                if not items:
                    break
        finally:
            self.cancel()
            client._local.list_total = None

    def _planned(self, body, items):
        """The number of pages (None: unknown), worked out once from the first page."""
        with self._lock:
            if self._count is _UNKNOWN:
                self._count = self._plan(body, items)
            return self._count

    def _after_page(self, future):
        """Done callback of pages 1 and 2: fetch ahead before the reader gets here."""
        if future.cancelled() or future.exception() is not None:
            return  # the reader gets the error
        items, body, _ = future.result()
        if future is self._first:
            self._planned(body, items)
        with self._lock:
            if future is not self._first:
                if not items:
                    return
                self._second_read = True
            second = self._ask_ahead()
        self._when_second_arrives(second)

    def _ask_ahead(self):
        """Ask for the pages up to `ahead` past the reader's (the caller holds the lock); returns
        page 2's Future if this asked for it. Page 2 alone until it came back with items: a server
        whose totals lie costs no extra call."""
        if self._closed or not isinstance(self._count, int):
            return None
        last = min(self._count, self._reading + self._ahead - 1 if self._second_read else 2)
        second = None
        while self._next_page <= last:
            future = self._pending[self._next_page] = self._client._submit(self._fetch, self._next_page)
            if self._next_page == 2:
                second = future
            self._next_page += 1
        return second

    def _when_second_arrives(self, future):
        # Outside the lock: a Future already done runs its callback at once, in this thread.
        if future is not None:
            future.add_done_callback(self._after_page)

    def _last(self, body, items, page):
        raise NotImplementedError


_UNKNOWN = object()  # Pages._count before the first page is planned


class _V4Pages(Pages):
    def __init__(self, client, path, per_page, params):
        def fetch(page):
            body = client._v4("GET", path, {**(params or {}), "page": page, "per_page": per_page})
            return body.get("result") or [], body, (body.get("result_info") or {}).get("total_count")

        def plan(body, items):
            info = body.get("result_info") or {}
            if not items:
                return 1
            size = info.get("per_page") if isinstance(info.get("per_page"), int) and info["per_page"] > 0 else per_page
            if isinstance(info.get("total_count"), int):
                return max(1, math.ceil(info["total_count"] / max(size, len(items))))
            if isinstance(info.get("total_pages"), int):
                return max(1, info["total_pages"])
            return None

        super().__init__(client, fetch, plan, per_page)
        self.per_page = per_page
        self._seen = 0

    def _last(self, body, items, page):
        self._seen += len(items)
        return not items or v4_is_last_page(body.get("result_info"), page, self._seen, len(items), self.per_page)


class _ScimPages(Pages):
    def __init__(self, client, path, filter, count):
        self.step = count

        def fetch(page):
            body = client._scim("GET", path, {"startIndex": 1 + (page - 1) * self.step, "count": count, "filter": filter})
            return body.get("Resources") or [], body, body.get("totalResults")

        def plan(body, items):
            total = body.get("totalResults")
            if not items:
                return 1
            if not isinstance(total, int):
                return None
            self.step = len(items) if len(items) < count and total > len(items) else count  # a server's smaller cap
            return max(1, math.ceil(total / self.step))

        super().__init__(client, fetch, plan, count)
        self.count = count
        self._next_index = 1

    def _last(self, body, items, page):
        self._next_index += len(items)
        return not items or scim_is_last_page(body, self._next_index, len(items), self.count)


class CloudflareClient:
    """Typed access to the endpoints vgmigrate uses. Thread-safe (one HttpClient underneath)."""

    def __init__(self, http: HttpClient, account_id: str, parallel: int = DEFAULT_PARALLEL):
        self.http = http
        self.account_id = account_id
        self.parallel = parallel  # pages of one listing fetched at once
        self.idp = None  # the AuthentikClient, for runs that write to the IdP (--mode idp, cutover)
        self._acct = f"/accounts/{_segment(account_id)}"
        self._local = threading.local()
        self._pool = None
        self._pool_lock = threading.Lock()

    def _submit(self, fn, *args):
        """Run one read on the client's pool, at most `parallel` at once; returns its Future.
        Only leaf reads go here (they never wait on other tasks), so the pool cannot deadlock."""
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=max(1, self.parallel), thread_name_prefix="vgmigrate-page")
        return self._pool.submit(fn, *args)

    @classmethod
    def connect(cls, base_url, token, account_id, parallel=DEFAULT_PARALLEL, **http_kwargs) -> "CloudflareClient":
        return cls(HttpClient(base_url, token, **http_kwargs), account_id, parallel)

    def __repr__(self):
        return f"CloudflareClient({self.http.base_url!r}, account={self.account_id!r})"

    @property
    def calls(self):
        """Requests sent so far, to Cloudflare and to the IdP this client writes through."""
        return self.http.calls + (self.idp.http.calls if self.idp is not None else 0)

    @property
    def last_ray(self):
        """cf-ray of the last response received on this thread (for the journal)."""
        return getattr(self._local, "ray", None)

    @property
    def last_status(self):
        return getattr(self._local, "status", None)

    @property
    def list_total(self):
        """How many items the listing in progress on this thread said it has (for progress bars)."""
        return getattr(self._local, "list_total", None)

    # -- transport -------------------------------------------------------------------------------

    def _send(self, method, path, params=None, json=None):
        response = self.http.request(method, path, params=params, json=json)
        self._local.ray = response.headers.get("cf-ray")
        self._local.status = response.status_code
        self._local.list_total = None  # a list page sets it again after this
        return response

    def _fail(self, method, path, response, **details):
        return CloudflareError.from_response(response, method, path, redact=self.http.redact, **details)

    def _v4(self, method, path, params=None, json=None):
        """The unwrapped envelope (`result`, `result_info`, ...) of a v4 call, or CloudflareError."""
        response = self._send(method, path, params, json)
        body = _json_or_none(response)
        if not 200 <= response.status_code < 300:
            raise self._fail(method, path, response)
        if not isinstance(body, dict):
            raise self._fail(method, path, response, errors=["the response was not a JSON envelope"])
        if body.get("success") is False:
            raise self._fail(method, path, response, errors=body.get("errors") or [], messages=body.get("messages") or [])
        return body

    def _result(self, method, path, params=None, json=None):
        return self._v4(method, path, params, json).get("result")

    def _v4_pages(self, path, per_page, params=None):
        return _V4Pages(self, path, per_page, params)

    def _scim(self, method, path, params=None, json=None):
        response = self._send(method, path, params, json)
        if not 200 <= response.status_code < 300:
            raise self._fail(method, path, response)
        body = _json_or_none(response)
        if response.status_code != 204 and not isinstance(body, dict):
            raise self._fail(method, path, response, errors=["the response was not a SCIM JSON object"])
        return body

    def _scim_pages(self, path, filter=None, count=SCIM_PAGE_SIZE):
        return _ScimPages(self, path, filter, count)

    # -- token and account -----------------------------------------------------------------------

    def verify_token(self) -> dict:
        """Which kind of token this is (account- or user-owned) and that it is active."""
        endpoints = [("user", "/user/tokens/verify")]
        if self.account_id:
            endpoints.insert(0, ("account", f"{self._acct}/tokens/verify"))
        for kind, path in endpoints:
            try:
                result = self._result("GET", path) or {}
            except CloudflareError as err:
                if err.status in _TOKEN_REJECTED:
                    continue
                raise
            status = result.get("status")
            if status != "active":
                raise TokenError(
                    f"the API token is {status or 'not active'}; create a new token and set CLOUDFLARE_API_TOKEN"
                )
            return {**result, "kind": kind}
        raise TokenError(
            "the API token was rejected by both the account and the user token endpoints; "
            "check CLOUDFLARE_API_TOKEN (an API token, not a Global API Key) and --account"
        )

    def list_accounts(self) -> list[dict]:
        return list(self._v4_pages("/accounts", PER_PAGE_ACCOUNTS))

    def account(self) -> dict:
        try:
            return self._result("GET", self._acct)
        except CloudflareError as err:
            if err.status in (403, 404):
                raise TokenError(
                    f"token cannot see account {self.account_id}: check --account / token scope"
                ) from None
            raise

    # -- read-only catalogue ---------------------------------------------------------------------

    def permission_groups(self):
        return self._v4_pages(f"{self._acct}/iam/permission_groups", PER_PAGE_PERMISSION_GROUPS)

    def roles(self):
        return self._v4_pages(f"{self._acct}/roles", PER_PAGE_ROLES)

    def members(self):
        return self._v4_pages(f"{self._acct}/members", PER_PAGE_MEMBERS)

    def member(self, member_id):
        return self._result("GET", f"{self._acct}/members/{_segment(member_id)}")

    # -- resource groups (single page: the endpoint takes no pagination parameters) ---------------

    def resource_groups_path(self):
        return f"{self._acct}/iam/resource_groups"

    def resource_group_path(self, rg_id):
        return f"{self.resource_groups_path()}/{_segment(rg_id)}"

    def resource_groups(self, name=None) -> list[dict]:
        return self._result("GET", self.resource_groups_path(), {"name": name}) or []

    def create_resource_group(self, name, scope_key, object_keys=(WHOLE_ACCOUNT,)) -> dict:
        body = {"name": name, "scope": {"key": scope_key, "objects": [{"key": k} for k in object_keys]}}
        return self._result("POST", self.resource_groups_path(), json=body)

    def delete_resource_group(self, rg_id) -> dict:
        return self._result("DELETE", self.resource_group_path(rg_id))

    # -- user groups -----------------------------------------------------------------------------

    def user_groups_path(self):
        return f"{self._acct}/iam/user_groups"

    def user_group_path(self, gid):
        return f"{self.user_groups_path()}/{_segment(gid)}"

    def user_group_members_path(self, gid):
        return f"{self.user_group_path(gid)}/members"

    def user_groups(self, name=None, fuzzy_name=None):
        params = {"name": name, "fuzzyName": fuzzy_name}
        return self._v4_pages(self.user_groups_path(), PER_PAGE_USER_GROUPS, params)

    def user_group(self, gid) -> dict:
        return self._result("GET", self.user_group_path(gid))

    def create_user_group(self, name, policies=None) -> dict:
        body = {"name": name}
        if policies is not None:
            body["policies"] = list(policies)
        return self._result("POST", self.user_groups_path(), json=body)

    def update_user_group(self, gid, *, name=None, policies=None) -> dict:
        """PUT: `policies` replaces the whole set (`[]` clears it); None leaves that field alone."""
        body = {}
        if name is not None:
            body["name"] = name
        if policies is not None:
            body["policies"] = list(policies)
        return self._result("PUT", self.user_group_path(gid), json=body)

    def delete_user_group(self, gid) -> dict:
        return self._result("DELETE", self.user_group_path(gid))

    def user_group_members(self, gid):
        return self._v4_pages(self.user_group_members_path(gid), PER_PAGE_USER_GROUP_MEMBERS)

    def add_user_group_members(self, gid, member_ids) -> list[dict]:
        """POST adds to the existing set. The body is a bare array of `{"id": <account member id>}`.

        Adding nobody is a no-op and sends nothing.
        """
        body = [{"id": m} for m in member_ids]
        if not body:
            return []
        return self._result("POST", self.user_group_members_path(gid), json=body) or []

    def replace_user_group_members(self, gid, member_ids) -> list[dict]:
        """PUT replaces the full member set (an empty list removes everyone)."""
        body = [{"id": m} for m in member_ids]
        return self._result("PUT", self.user_group_members_path(gid), json=body) or []

    def remove_user_group_member(self, gid, member_id) -> dict:
        return self._result("DELETE", f"{self.user_group_path(gid)}/members/{_segment(member_id)}")

    # -- SCIM ------------------------------------------------------------------------------------

    def scim_url(self):
        """This account's SCIM endpoint, the URL an IdP's SCIM provider must point at."""
        return f"{self.http.base_url}{self._acct}/scim/v2"

    def scim_groups(self, filter=None):
        """`filter` supports only `displayName eq "..."` on Cloudflare."""
        return self._scim_pages(f"{self._acct}/scim/v2/Groups", filter)

    def scim_group(self, gid) -> dict:
        return self._scim("GET", f"{self._acct}/scim/v2/Groups/{_segment(gid)}")

    def scim_users(self, filter=None):
        """`filter` supports only `userName eq "..."` on Cloudflare."""
        return self._scim_pages(f"{self._acct}/scim/v2/Users", filter)

    def scim_user(self, uid) -> dict:
        return self._scim("GET", f"{self._acct}/scim/v2/Users/{_segment(uid)}")

    # -- audit -----------------------------------------------------------------------------------

    def audit_logs(self, since=None, before=None):
        """Account audit log (v1), newest first. `since`/`before`: datetime or RFC 3339 string."""
        params = {"since": _timestamp(since), "before": _timestamp(before)}
        return self._v4_pages(f"{self._acct}/audit_logs", PER_PAGE_AUDIT_LOGS, params)

    def audit_logs_v2(self, since, before):
        """Audit Logs v2 (`/logs/audit`), newest first; `since` and `before` are required.

        Cursor paging: the next cursor is `result_info.cursor` (docs) or `result_info.cursors.after`
        (SDK); no cursor, or an empty page, ends the walk. 403/404 mean v2 is not available to this
        token or account: callers fall back to `audit_logs` (v1).
        """
        path = f"{self._acct}/logs/audit"
        params = {"since": _timestamp(since), "before": _timestamp(before), "limit": PER_PAGE_AUDIT_LOGS_V2}
        cursor = None
        while True:
            body = self._v4("GET", path, {**params, "cursor": cursor} if cursor else params)
            info = body.get("result_info") or {}
            items = body.get("result") or []
            yield from items
            after = info.get("cursor") or (info.get("cursors") or {}).get("after")
            if not items or not after or after == cursor:
                return
            cursor = after


def in_background(client, fn, *args):
    """Start one read on the client's pool (at most `parallel` at once) and return its Future: a
    scan starts its independent listings together."""
    return client._submit(fn, *args)
