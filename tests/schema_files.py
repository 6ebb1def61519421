"""Where the contract tests find the vendors' schemas: in the repository (tests/schemas/README.md
names their sources), so a checkout needs nothing beside it."""

from pathlib import Path

SCHEMAS = Path(__file__).resolve().parent / "schemas"
CLOUDFLARE = SCHEMAS / "cloudflare-openapi-subset.json"
AUTHENTIK = SCHEMAS / "authentik-openapi-subset.json"
OKTA = SCHEMAS / "okta" / "management-subset.json"
