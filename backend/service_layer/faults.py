"""Fault injection for crash tests: kill the process at a named step of a payment.

Set ``BILLTALK_FAULT_POINT`` to one of :data:`POINTS` (test environments only;
ignored when ``BILLTALK_ENVIRONMENT=production``) and the process sends itself
SIGKILL when a payment reaches that step:

* ``after_record`` - the pending payment row is committed, the gateway not yet called;
* ``during_charge`` - the gateway has charged, its answer not yet recorded;
* ``during_settle`` - the settlement is written but not committed.

``tests/security/test_crash.py`` restarts the server and runs ``billtalk payments
reconcile`` to show each payment happens exactly once or not at all.
"""

from __future__ import annotations

import os
import signal

POINTS = ("after_record", "during_charge", "during_settle")


def point(name: str) -> None:
    """Die here (SIGKILL, no clean-up) if ``BILLTALK_FAULT_POINT`` names this step."""
    if os.environ.get("BILLTALK_FAULT_POINT") == name and (
        os.environ.get("BILLTALK_ENVIRONMENT") != "production"
    ):
        os.kill(os.getpid(), signal.SIGKILL)
