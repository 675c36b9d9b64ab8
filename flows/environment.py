"""Process environment defaults, applied before Prefect or Ray are imported.

Only defaults: a value the user has set always wins.
"""

from __future__ import annotations

import os

DEFAULTS = {
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    # The ephemeral Prefect server can take a while to start on a loaded 2-core machine.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "RAY_AUTH_MODE": "disabled",
    # Ray's usage-stats prompt and its dashboard have no place in a batch job's output.
    "RAY_USAGE_STATS_ENABLED": "0",
}


def apply_defaults() -> None:
    for name, value in DEFAULTS.items():
        os.environ.setdefault(name, value)
