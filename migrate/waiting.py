"""Waiting for an IdP's change to reach Cloudflare.

An IdP answers the API call that changes a group at once and pushes the change to Cloudflare
later, from a worker, retrying failures for up to an hour (Authentik: seconds to minutes). So no
check of Cloudflare after an IdP change is made once, right away: it is polled until it holds or
a deadline passes, with a progress line every so often, and what did not arrive is named.
"""

import logging
import time

waits = logging.getLogger("vgmigrate.ratelimit")  # the CLI says on stderr when and why a command waits

POLL = (0.2, 2.0)  # first and longest pause between checks, seconds
SAY_EVERY = 10.0  # seconds between progress lines


def wait_until(check, timeout, what, *, clock=time.monotonic, sleep=time.sleep):
    """Call `check()`, which returns (done, what is missing), until done or `timeout` seconds have
    passed: None when done, else the last `missing`. `what` names the wait in the
    progress lines ("Cloudflare to drop 3 legacy role(s)")."""
    started = clock()
    deadline, pause, said = started + timeout, POLL[0], started
    while True:
        done, missing = check()
        if done:
            return None
        if clock() >= deadline:
            return missing
        if clock() - said >= SAY_EVERY:
            waits.info("waiting for %s (%.0f s of up to %g s)", what, clock() - started, timeout)
            said = clock()
        sleep(min(pause, max(0.0, deadline - clock())))
        pause = min(pause * 2, POLL[1])
