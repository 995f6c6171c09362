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
from .policy_enforce import PolicyViolation, enforce

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
