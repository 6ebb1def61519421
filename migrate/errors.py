"""Exceptions that the CLI turns into one-line messages (never a traceback unless --debug)."""

import re


class VgmigrateError(Exception):
    """An expected failure: `str(err)` says what happened and what to do next."""

    exit_code = 1


class Interrupted(VgmigrateError):
    """Ctrl-C (SIGINT): one line saying what state it left and what to run, and exit 130 (128 +
    SIGINT, what a shell reports for a process a Ctrl-C stopped), whatever the command."""

    exit_code = 130


class UsageProblem(VgmigrateError):
    """A missing or malformed setting (token, account id): one line, exit 2, before any call."""

    exit_code = 2


def error_details(response):
    """(errors, messages) from a failed response: v4 envelope, SCIM error, `{"detail"}` or plain text."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        if isinstance(body.get("errors"), list) and body["errors"]:
            return body["errors"], body.get("messages") or []
        if body.get("detail") is not None:
            code = body.get("scimType") or _int_or(body.get("status"), response.status_code)
            return [{"code": code, "message": str(body["detail"])}], []
    text = (response.text or "").strip()
    return ([" ".join(text.split())[:200]] if text else []), []


def _int_or(value, default):
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _redacted(error, redact):
    """The error with the token scrubbed from every string in it, however deeply nested
    (`error_chain` entries carry messages too)."""
    if isinstance(error, dict):
        return {k: _redacted(v, redact) for k, v in error.items()}
    if isinstance(error, (list, tuple)):
        return [_redacted(v, redact) for v in error]
    if isinstance(error, str):
        return redact(error)
    return error


class CloudflareError(VgmigrateError):
    """The API answered with a failure envelope (or a non-2xx status)."""

    def __init__(self, status, errors=(), messages=(), ray=None, method=None, path=None):
        self.status = status
        self.errors = list(errors or [])
        self.messages = list(messages or [])
        self.ray = ray
        self.method = method
        self.path = path
        super().__init__(self._describe())

    @classmethod
    def from_response(cls, response, method, path, *, redact=str, errors=None, messages=None, **extra):
        """The one way to build an API error from a response. `errors` defaults to what the body
        says; `redact` scrubs the token from every message, whatever shape the body had."""
        if errors is None:
            errors, messages = error_details(response)
        errors = [_redacted(e, redact) for e in errors or []]
        messages = [_redacted(m, redact) for m in messages or []]
        return cls(response.status_code, errors, messages, response.headers.get("cf-ray"), method, path, **extra)

    @property
    def codes(self):
        return [e.get("code") for e in self.errors if isinstance(e, dict)]

    def _describe(self):
        detail = "; ".join(
            f"{e.get('code')}: {e.get('message')}" if isinstance(e, dict) else str(e)
            for e in self.errors
        ) or "no error detail"
        where = f"{self.method} {self.path} " if self.method else ""
        ray = f" (cf-ray {self.ray})" if self.ray else ""
        advice = ""
        if self.status in (401, 403):
            advice = ("; the token may lack a permission this call needs: give it Account Settings Read (scan, verify) "
                      "and Account Settings Write (apply, rollback), then run again")
        return f"Cloudflare API {where}failed with HTTP {self.status}: {detail}{ray}{advice}"


def authentik_error_details(response):
    """(errors, messages) from a failed Authentik response: GenericError `{"detail", "code"}`,
    ValidationError `{"<field>": ["msg"], "non_field_errors": [..]}`, or plain text (a proxy's page)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body:
        if isinstance(body.get("detail"), str):
            return [{"code": body.get("code") or response.status_code, "message": body["detail"]}], []
        errors = []
        for field, value in body.items():
            if field == "code" and isinstance(value, str):
                continue
            text = "; ".join(_flatten(value)) or "invalid"
            if field == "non_field_errors":
                errors.append({"code": "invalid", "message": text})
            else:
                errors.append({"code": field, "message": f"{field}: {text}"})
        if errors:
            return errors, []
    if isinstance(body, list) and body:
        return [{"code": "invalid", "message": "; ".join(_flatten(body))}], []
    text = (response.text or "").strip()
    return ([" ".join(text.split())[:200]] if text else []), []


def _flatten(value):
    """Every message string in a DRF error value, however nested (`{"users": {"0": ["..."]}}`)."""
    if isinstance(value, dict):
        return [f"{k}: {m}" for k, v in value.items() for m in _flatten(v)]
    if isinstance(value, (list, tuple)):
        return [m for v in value for m in _flatten(v)]
    return [] if value is None else [str(value)]


AUTHENTIK_TOKEN_ADVICE = (
    "; the Authentik token is wrong, expired, or its user lacks a permission this call needs: in Authentik "
    "(Directory > Tokens and App passwords) create a token with intent \"API\" for a user that may view groups, users, "
    "applications, SCIM providers, their group and user links and tasks (idp check, scan), and also add/change/delete "
    "groups, add/change SCIM providers, add/change applications and run SCIM syncs (idp check --fix, apply, cutover), "
    "or a superuser; then set AUTHENTIK_TOKEN and run again"
)


class AuthentikError(CloudflareError):
    """Authentik's API answered with an error. A CloudflareError subclass on purpose: the executor
    and rollback treat any API failure alike (`except CloudflareError`)."""

    @classmethod
    def from_response(cls, response, method, path, *, redact=str, errors=None, messages=None, **extra):
        if errors is None:
            errors, messages = authentik_error_details(response)
        errors = [_redacted(e, redact) for e in errors or []]
        messages = [_redacted(m, redact) for m in messages or []]
        return cls(response.status_code, errors, messages, None, method, path, **extra)

    def _describe(self):
        detail = "; ".join(e.get("message") if isinstance(e, dict) else str(e) for e in self.errors) or "no error detail"
        where = f"{self.method} {self.path} " if self.method else ""
        advice = AUTHENTIK_TOKEN_ADVICE if self.status in (401, 403) else ""
        return f"Authentik API {where}failed with HTTP {self.status}: {detail}{advice}"


class OutcomeUnknown(VgmigrateError):
    """A write was sent but its response was lost: it may or may not have happened.

    Never resend blindly; the caller reconciles against live state (e.g. looks the object up by name).
    """

    def __init__(self, method, path, cause):
        self.method = method
        self.path = path
        self.cause = cause
        super().__init__(
            f"{method} {path} failed or its response was lost ({type(cause).__name__}); "
            "the change may or may not have been made. Run the command again: it checks live state first."
        )


class TokenError(VgmigrateError):
    """The token is missing, wrong, expired, or cannot see the account."""


class SyncError(VgmigrateError):
    """The IdP did not bring a group to Cloudflare as the plan needs (sync errors, or it did not
    arrive in time). Journaled as a failed step, like an API failure."""

    status = None
    ray = None


def entra_error_details(response):
    """(errors, messages) from a failed Entra answer: Graph's `{"error": {"code", "message"}}`, the
    token endpoint's `{"error", "error_description"}` (AADSTS codes), or plain text."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and (error.get("code") or error.get("message")):
            return [{"code": error.get("code"), "message": str(error.get("message") or "")}], []
        if isinstance(error, str):
            # The description's first line; the rest is a trace id and a timestamp.
            text = str(body.get("error_description") or "").splitlines()[0] if body.get("error_description") else ""
            return [{"code": error, "message": text}], []
    text = (response.text or "").strip()
    return ([" ".join(text.split())[:200]] if text else []), []


class EntraError(CloudflareError):
    """Microsoft Graph or the Entra token endpoint answered with an error. A CloudflareError
    subclass on purpose, as AuthentikError is. `advice` is what to do, set by the client (it knows
    which permission the call needs)."""

    def __init__(self, status, errors=(), messages=(), ray=None, method=None, path=None, advice=""):
        self.advice = advice
        super().__init__(status, errors, messages, ray, method, path)

    @classmethod
    def from_response(cls, response, method, path, *, redact=str, errors=None, messages=None, **extra):
        if errors is None:
            errors, messages = entra_error_details(response)
        errors = [_redacted(e, redact) for e in errors or []]
        messages = [_redacted(m, redact) for m in messages or []]
        return cls(response.status_code, errors, messages, response.headers.get("request-id"), method, path, **extra)

    @property
    def code(self):
        codes = self.codes
        return codes[0] if codes else None

    def _describe(self):
        detail = "; ".join(f"{e.get('code')}: {e.get('message')}" if isinstance(e, dict) else str(e)
                           for e in self.errors) or "no error detail"
        where = f"{self.method} {self.path} " if self.method else ""
        advice = f"; {self.advice}" if self.advice else ""
        return f"Entra ID {where}failed with HTTP {self.status}: {detail}{advice}"


def okta_error_details(response):
    """(errors, messages) from a failed Okta response: `{"errorCode", "errorSummary", "errorCauses":
    [{"errorSummary"}]}`, or plain text (a proxy's page)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and (body.get("errorCode") or body.get("errorSummary")):
        causes = [c.get("errorSummary") for c in body.get("errorCauses") or [] if isinstance(c, dict) and c.get("errorSummary")]
        summary = str(body.get("errorSummary") or "")
        message = summary + (f" ({'; '.join(causes)})" if causes and causes != [summary] else "")
        return [{"code": body.get("errorCode") or response.status_code, "message": message}], []
    text = (response.text or "").strip()
    return ([" ".join(text.split())[:200]] if text else []), []


def missing_scopes(response):
    """The scopes an access token lacks, from the 403's `WWW-Authenticate: Bearer ..., scope="a b",
    error="insufficient_scope"` (Okta names them there); [] when it does not say."""
    header = response.headers.get("WWW-Authenticate") or ""
    if "insufficient_scope" not in header:
        return []
    found = re.search(r'scope="([^"]*)"', header)
    return found.group(1).split() if found else []


OKTA_TOKEN_ADVICE = (
    "; the Okta token is wrong or expired: set OKTA_API_TOKEN to an API token (Security > API > Tokens) of an admin "
    "who may read and manage groups and apps, or OKTA_ACCESS_TOKEN to a fresh OAuth access token, and run again"
)
OKTA_ROLE_ADVICE = (
    "; the API token's admin lacks a permission this call needs: give that admin the Super Administrator role, or a "
    "custom role over groups and the Cloudflare app (see the README, Okta token), and run again"
)


class OktaError(CloudflareError):
    """Okta's API answered with an error (a CloudflareError subclass on purpose: the executor and
    rollback treat any API failure alike). `scopes`: what a 403 said the access token lacks."""

    scopes = ()

    @classmethod
    def from_response(cls, response, method, path, *, redact=str, errors=None, messages=None, **extra):
        if errors is None:
            errors, messages = okta_error_details(response)
        errors = [_redacted(e, redact) for e in errors or []]
        messages = [_redacted(m, redact) for m in messages or []]
        error = cls(response.status_code, errors, messages, response.headers.get("X-Okta-Request-Id"), method, path, **extra)
        error.scopes = missing_scopes(response)
        if error.scopes:
            error.args = (error._describe(),)
        return error

    @property
    def codes(self):
        return [e.get("code") for e in self.errors if isinstance(e, dict)]

    def _describe(self):
        detail = "; ".join(f"{e.get('code')}: {e.get('message')}" if isinstance(e, dict) else str(e)
                           for e in self.errors) or "no error detail"
        where = f"{self.method} {self.path} " if self.method else ""
        advice = ""
        if self.scopes:
            advice = (f"; the access token lacks the scope {' and '.join(self.scopes)}: grant it to the service app "
                      "(its Okta API Scopes tab), get a new token, set OKTA_ACCESS_TOKEN and run again")
        elif self.status == 401:
            advice = OKTA_TOKEN_ADVICE
        elif self.status == 403:
            advice = OKTA_ROLE_ADVICE
        return f"Okta API {where}failed with HTTP {self.status}: {detail}{advice}"
