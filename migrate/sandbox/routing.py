"""Request/response values, the route table, and the v4 envelope and pagination helpers."""

import json
import math
import re
from dataclasses import dataclass, field
from itertools import islice
from urllib.parse import parse_qs

from .errors import INVALID_PARAMETER, MALFORMED_JSON, ApiError, ScimError

JSON = "application/json"
SCIM_JSON = "application/scim+json"


@dataclass
class Request:
    method: str
    path: str  # relative to /client/v4, no query
    query: dict
    body: bytes
    headers: object
    context: object = None  # the Sandbox's per-request context (actor, account id, ...)

    @classmethod
    def parse_query(cls, raw):
        return parse_qs(raw, keep_blank_values=True)

    def arg(self, name):
        """The last value of a query parameter; an empty value counts as absent."""
        values = self.query.get(name)
        return values[-1] if values and values[-1] != "" else None

    def json(self, scim=False):
        """The decoded body; malformed or missing JSON is a 400 in the endpoint's error shape."""
        try:
            return json.loads(self.body.decode("utf-8")) if self.body else None
        except (UnicodeDecodeError, ValueError):
            if scim:
                raise ScimError(400, "Request body is not valid JSON", "invalidSyntax") from None
            raise ApiError(400, MALFORMED_JSON, "Malformed JSON in request body") from None

    def json_object(self):
        body = self.json()
        if not isinstance(body, dict):
            raise ApiError(400, MALFORMED_JSON, "Request body must be a JSON object")
        return body


@dataclass
class Response:
    status: int
    body: object = None
    content_type: str = JSON
    headers: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern
    handler: object
    scim: bool
    verify: bool


class Router:
    """Ordered (method, compiled path pattern, handler) table."""

    def __init__(self):
        self.routes = []

    def route(self, method, pattern, scim=False, verify=False):
        """`scim`: errors use the SCIM envelope; `verify`: the handler checks the token itself."""
        compiled = re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern) + "$")

        def register(handler):
            self.routes.append(Route(method, compiled, handler, scim, verify))
            return handler

        return register

    def match(self, method, path):
        """(route, params) or None; a known path with another method is still no route."""
        for route in self.routes:
            if route.method == method:
                found = route.pattern.match(path)
                if found:
                    return route, found.groupdict()
        return None


def envelope(result, result_info=None, messages=()):
    body = {"success": True, "errors": [], "messages": list(messages), "result": result}
    if result_info is not None:
        body["result_info"] = result_info
    return body


def ok(result, result_info=None, messages=()):
    return Response(200, envelope(result, result_info, messages))


def failure(status, code, message):
    return failures(status, [{"code": code, "message": message}])


def failures(status, errors):
    """A v4 failure envelope with several errors (each may carry an `error_chain`)."""
    return Response(status, {"success": False, "errors": list(errors), "messages": [], "result": None})


def int_arg(request, name, default, minimum, maximum=None):
    """A numeric query parameter within the schema's bounds, else 400 (Cloudflare does not clamp)."""
    raw = request.arg(name)
    if raw is None or raw == "":
        return default
    try:
        number = float(raw)
    except ValueError:
        raise ApiError(400, INVALID_PARAMETER, f"{name} must be a number") from None
    if not number.is_integer():
        raise ApiError(400, INVALID_PARAMETER, f"{name} must be a whole number")
    value = int(number)
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise ApiError(400, INVALID_PARAMETER, f"{name} must be {bounds}")
    return value


def choice_arg(request, name, choices, default=None):
    raw = request.arg(name)
    if raw is None or raw == "":
        return default
    if raw not in choices:
        raise ApiError(400, INVALID_PARAMETER, f"{name} must be one of: {', '.join(choices)}")
    return raw


def page_args(request, default, minimum, maximum):
    page = int_arg(request, "page", 1, 1)
    per_page = int_arg(request, "per_page", default, minimum, maximum)
    return page, per_page


def paged(items, total, page, per_page, render):
    """One page of a lazy iterable; past the end, `result: []` (the SDK pages until empty)."""
    start = (page - 1) * per_page
    result = [render(item) for item in islice(items, start, start + per_page)]
    info = {
        "page": page,
        "per_page": per_page,
        "count": len(result),
        "total_count": total,
        "total_pages": math.ceil(total / per_page) if total else 0,
    }
    return ok(result, info)


def count(iterable):
    return sum(1 for _ in iterable)
