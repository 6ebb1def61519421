"""Every IdP adapter answers every call of the engine's IdP protocol (migrate/idp/base.py), so a
step never meets an IdP that lacks what it asks for."""

import importlib
import inspect

import pytest

from migrate.idp.base import IDPS, IdP


def adapter_class(source):
    module = importlib.import_module(f"migrate.idp.{source}")
    (cls,) = [c for _, c in inspect.getmembers(module, inspect.isclass) if getattr(c, "source", None) == source and c.__module__ == module.__name__]
    return module, cls


PROTOCOL = sorted(set(IdP.__annotations__) | {name for name, _ in inspect.getmembers(IdP, inspect.isfunction)})


@pytest.mark.parametrize("source", IDPS)
def test_each_adapter_has_every_protocol_call(source):
    module, cls = adapter_class(source)
    instance_only = {"sync_timeout", "last_status", "last_ray"}  # set in __init__ or properties
    missing = [name for name in PROTOCOL if name not in instance_only and not hasattr(cls, name)]
    assert not missing, f"{cls.__name__} lacks {missing}"
    assert callable(getattr(module, "connect_from_env", None)) or source == "authentik"
    assert isinstance(cls.name, str) and cls.name and cls.source == source
