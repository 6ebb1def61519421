"""The real-Authentik lane: every test here talks to a running Authentik server (see the README,
"The real-Authentik lane"). The default suite deselects it (marker `real_authentik`); run it with
`python -m pytest -q -m real_authentik tests/real_authentik` once `start.sh` has started the server."""

import os
from pathlib import Path

import pytest
import requests

from .ak import Authentik

HERE = Path(__file__).parent
ENV_FILE = Path(os.environ.get("AK_RUN", "/tmp/authentik-run")) / "authentik.env"


def pytest_collection_modifyitems(config, items):
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.real_authentik)


def _settings():
    """AUTHENTIK_URL / AUTHENTIK_TOKEN from the environment, else from start.sh's env file."""
    url, token = os.environ.get("AUTHENTIK_URL"), os.environ.get("AUTHENTIK_TOKEN")
    if (not url or not token) and ENV_FILE.is_file():
        for line in ENV_FILE.read_text().splitlines():
            name, _, value = line.removeprefix("export ").partition("=")
            value = value.strip().strip("'\"")
            if name == "AUTHENTIK_URL" and not url:
                url = value
            elif name == "AUTHENTIK_TOKEN" and not token:
                token = value
    return url, token


def _skip(reason):
    # .ci/run sets VGMIGRATE_LANE_REQUIRED after starting the server: there a skip would hide a failure.
    if os.environ.get("VGMIGRATE_LANE_REQUIRED"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def authentik_settings():
    url, token = _settings()
    if not url or not token:
        _skip(f"no running Authentik: set AUTHENTIK_URL and AUTHENTIK_TOKEN or start it (../shared/authentik/start.sh writes {ENV_FILE})")
    try:
        live = requests.get(url.rstrip("/").removesuffix("/api/v3") + "/-/health/live/", timeout=5)
    except requests.RequestException as err:
        _skip(f"Authentik at {url} does not answer ({type(err).__name__}): start it with ../shared/authentik/start.sh")
    if live.status_code >= 400:
        _skip(f"Authentik at {url} is not live (HTTP {live.status_code})")
    return url, token


@pytest.fixture
def authentik(authentik_settings):
    """The server, with whatever earlier lane tests made removed."""
    client = Authentik(*authentik_settings)
    client.remove_lane_objects()
    yield client
    client.close()
