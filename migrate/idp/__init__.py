"""One engine for every IdP that pushes groups to Cloudflare over SCIM.

    base       the protocol: what planner, executor, cutover and rollback need of an IdP, and
               `idp_of`, the one way they reach it
    authentik  the Authentik adapter: its client, version table and quirks
    check      `vgmigrate idp check [--fix]`: is the IdP set up to provision this account?
    okta       the Okta adapter: its client, and the protocol on apps, assignments and Group Push
    okta_check `idp check [--fix]` for Okta (with check's Report and fix shapes)

This package's __init__ imports nothing, so loading an adapter never loads the check (which
runs steps through the executor).
"""
