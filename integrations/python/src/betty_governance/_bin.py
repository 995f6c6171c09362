"""Finding and running the Betty binaries: `BETTY_BIN_DIR` first, then `PATH`.

Fail closed: a binary that is missing, cannot start, or times out raises `BinaryError`,
which every caller turns into "blocked", never into "passed".
"""

import os
import shutil
import subprocess
from typing import List, Optional, Sequence

TOOLS = ("policy-enforce", "telemetry-capture", "telemetry-query", "registry-diff", "approval-queue")


class BinaryError(RuntimeError):
    """A Betty binary could not be found or run, or said something we cannot read."""


def find(tool: str) -> str:
    """The path of `tool`: in `BETTY_BIN_DIR` if set (and only there), else on `PATH`."""
    if tool not in TOOLS:
        raise BinaryError(f"unknown Betty tool `{tool}`")
    bin_dir = os.environ.get("BETTY_BIN_DIR")
    if bin_dir:
        path = os.path.join(bin_dir, tool)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
        raise BinaryError(f"`{tool}` is not an executable file in BETTY_BIN_DIR={bin_dir!r}")
    path = shutil.which(tool)
    if path is None:
        raise BinaryError(
            f"`{tool}` was not found on PATH; install Betty's binaries or set BETTY_BIN_DIR"
        )
    return path


def run(tool: str, args: Sequence[str], *, timeout: float = 60.0,
        input: Optional[str] = None) -> subprocess.CompletedProcess:
    """Runs `tool args...`, capturing text stdout and stderr. Never raises on a non-zero exit."""
    cmd: List[str] = [find(tool), *args]
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              input=input, stdin=None if input is not None else subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError) as e:
        raise BinaryError(f"`{tool}` could not run: {e}") from e
