"""betty_governance: Betty's governance layer for Python skills.

Thin, stdlib-only wrappers over the Rust binaries (`policy-enforce`, `telemetry-capture`,
`telemetry-query`, `registry-diff`, `approval-queue`), found in `BETTY_BIN_DIR` or on `PATH`.
Everything fails closed: a missing binary or output we cannot parse blocks, never passes.
"""

from ._bin import BinaryError, find
from .api import (
    GovernanceError,
    capture,
    check_approval,
    diff,
    request_approval,
    track,
)


def __getattr__(name):
    # Imported lazily so `python -m betty_governance.policy_enforce` runs it once, cleanly.
    if name in ("PolicyViolation", "enforce"):
        from . import policy_enforce

        return getattr(policy_enforce, name)
    raise AttributeError(f"module 'betty_governance' has no attribute {name!r}")


__all__ = [
    "BinaryError",
    "GovernanceError",
    "PolicyViolation",
    "capture",
    "check_approval",
    "diff",
    "enforce",
    "find",
    "request_approval",
    "track",
]
__version__ = "0.1.0"
