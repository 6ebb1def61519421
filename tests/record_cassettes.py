"""Re-record the Cloudflare client cassettes in fixtures/cassettes/cloudflare/.

    python tests/record_cassettes.py

Deletes the old cassettes, then runs tests/test_cassettes.py with `--record-mode=rewrite`: each
replay test starts a fresh in-process sandbox (demo seed, fixed account id), talks to it over
loopback, and vcrpy saves the conversation with the host rewritten to https://api.cloudflare.com,
the Authorization header and cookies dropped, and token-like JSON values redacted. The same run
ends with the secret scan over every cassette, so a leak fails the recording. Extra arguments are
passed to pytest (e.g. `-k scim` to re-record only some; then old cassettes are kept).

Needs no network and no credentials. The tests replay these files with the network blocked.
"""

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
CASSETTES = HERE.parent / "fixtures" / "cassettes" / "cloudflare"


def main(argv):
    if not any(arg == "-k" or arg.startswith("-k") for arg in argv):
        for old in CASSETTES.glob("*.yaml"):
            old.unlink()
    return pytest.main([str(HERE / "test_cassettes.py"), "--record-mode=rewrite", "-q", *argv])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
