"""Failures the emulator answers with, in Cloudflare's two error shapes (v4 envelope and SCIM)."""

# Error codes. Cloudflare publishes no table for the IAM endpoints; these are the codes its v4 API
# is known to use where one is known (1000, 6007, 7003, 971, 10000), and plausible ones otherwise.
INVALID_TOKEN = 1000  # token verify: "Invalid API Token"
INVALID_REQUEST = 1001  # body fails validation (missing field, bad reference, CF prefix, lock)
INVALID_PARAMETER = 1004  # query parameter out of bounds or malformed
NOT_FOUND = 1003  # the object named in the path does not exist
MALFORMED_JSON = 6007  # "Malformed JSON in request body"
NO_ROUTE = 7003  # "Could not route to <path>, perhaps your object identifier is invalid?"
NO_ROUTE_FOR_URI = 7000  # "No route for that URI" (follows 7003 in the same errors list)
INVALID_HEADERS = 6003  # "Invalid request headers", with the specific header in `error_chain`
INVALID_AUTH_FORMAT = 6111  # error_chain: "Invalid format for Authorization header"
MISSING_AUTH = 9106  # "Missing X-Auth-Key, X-Auth-Email or Authorization headers"
RATE_LIMITED = 971  # "Please wait and consider throttling your request speed"
AUTHENTICATION = 10000  # "Authentication error"
INTERNAL = 10001  # injected 5xx


class ApiError(Exception):
    """A v4 failure envelope: HTTP status plus one {code, message} error."""

    def __init__(self, status, code, message):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class ScimError(Exception):
    """An RFC 7644 section 3.12 error, as the SCIM service answers."""

    def __init__(self, status, detail, scim_type=None):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.scim_type = scim_type


def bad_request(message):
    return ApiError(400, INVALID_REQUEST, message)


def not_found(what):
    return ApiError(404, NOT_FOUND, f"{what} not found")
