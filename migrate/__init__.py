"""vgmigrate: move a Cloudflare account off SCIM virtual groups onto native User Groups."""

__version__ = "0.1.0"
