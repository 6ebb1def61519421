"""vgmigrate: move a Cloudflare account off SCIM virtual groups onto native User Groups.

One job per module; imports run one way (cli -> workflows -> steps, idp, clients -> rules), with
no circle (tests/test_architecture.py checks).

    cli          click wiring only: options, prompts, output, exit codes (__main__: python -m migrate)
    scan         read the account and record one inventory scan      sources  cloudflare/authentik/file -> VirtualGroup
    findings     analyse one scan (pure)                               roles    role name -> permission group (pure)
    planner      inventory -> plan (pure)                              planfile plan <-> canonical JSON, plan id
    executor     apply a plan, journaled and resumable                 rollback undo a run from its journal
    cutover      take migrated members out of the old CF- groups      verify   live state vs the plan, access parity
    rehearsal    apply, verify, roll back on a replica                 demo     the whole migration on the sandbox
    legacy       the legacy roles CF- groups grant in Cloudflare       waiting  wait, with a deadline, for an IdP's push
    steps/       every step kind: build, send, reconcile, undo, describe (base, api, idp, setup, okta)
    idp/         what the engine needs of an IdP (base), the Authentik, Okta and Entra ID adapters, `idp check [--fix]`
    cloudflare   Cloudflare REST + SCIM client                         http     session, retries, rate limit, redaction
    inventory    the SQLite schema and every SQL write                 views    the read-only SQL views
    codec        stable JSON and timestamps for the inventory          runs     run ids, statuses, the current run
    approval     the approval report's facts and renderings           markup   Markdown and HTML building blocks
    reports      terminal tables                                       export   the audit export
    terraform    an apply run's User Groups as Terraform code
    progress     progress on stderr                                    collector pause the cycle collector for big graphs
    errors       exceptions the CLI turns into one line                sandbox/ the emulator (its own copies: the oracle)

Each domain rule has one home; everything else imports it:

    virtual group name grammar, the CF- test, the 32-hex id (HEX_ID)       names
    scope keys, account-wide, the resource group a plan reuses, policy
    equality and write form, name and email identity, SUPER_ADMIN          iam
    role resolution and the rename table                                   roles
    step kinds: which makes a group, adds members, grants what, its words  steps
    run and journal statuses                                               runs
    the Authentik version table and its quirks                             idp.authentik
    Graph's limits (batch sizes, on-demand pace) and the permissions      idp.entra
"""

__version__ = "0.1.0"
