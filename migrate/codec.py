"""The inventory's text forms: stable JSON for its columns and for plan files (whole, or piece by
piece for a large plan), JSON read back with shared strings, and UTC timestamps."""

import json
from datetime import datetime, timedelta, timezone

from .collector import cycle_collection_paused


def utcnow():
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


UTCNOW_RESOLUTION = timedelta(milliseconds=1)  # utcnow() cuts off the rest: a moment it gives lasts this long


def dumps(value):
    """Stable JSON for columns: sorted keys, no spaces, so equal data is equal text."""
    return _STABLE_JSON.encode(value)


# json.dumps with these options, without building an encoder per call (a scan makes ~250,000).
# No cycle check: what it encodes was parsed from JSON or built as a tree, and the check costs a
# quarter of the time of encoding an account member.
_STABLE_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, check_circular=False)


def dumps_chunks(value):
    """dumps(value) piece by piece: each entry of a top-level object, and each item of a list in
    it, encoded on its own (in C). A plan at 100,000 members is ~48 MB of JSON, which need never be
    one string to hash or store it; Python's own iterencode is four times slower."""
    if not isinstance(value, dict):
        yield from _array_chunks(value)
        return
    yield "{"
    for n, key in enumerate(sorted(value)):  # as sort_keys orders them
        yield ("," if n else "") + dumps(key) + ":"
        yield from _array_chunks(value[key])
    yield "}"


def _array_chunks(value):
    if not isinstance(value, (list, tuple)):
        yield dumps(value)
        return
    yield "["
    for n, item in enumerate(value):
        if n:
            yield ","
        yield dumps(item)
    yield "]"


def plan_text(body):
    """A plans.body value as text: UTF-8 bytes (save_plan), or TEXT in inventories written before."""
    return body.decode() if isinstance(body, bytes) else body


@cycle_collection_paused()
def loads_shared(text):
    """json.loads, keeping one copy of each distinct string. A plan names a member in its group,
    in its step and in the access picture, and json.loads makes a new string for every mention:
    at 100,000 members the copies alone are ~70 MB."""
    strings = {}
    share = strings.setdefault

    def hook(obj):  # called for every object, innermost first
        for key, value in obj.items():
            if type(value) is str:
                obj[key] = share(value, value)
            elif type(value) is list:
                value[:] = [share(v, v) if type(v) is str else v for v in value]
        return obj

    return json.loads(text, object_hook=hook)
