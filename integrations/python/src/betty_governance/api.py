"""`capture`, `track`, `diff`, `request_approval`, `check_approval`: the other binaries from Python.

Each runs one binary and returns what it said; each fails closed: a binary that is missing,
fails, or prints something we cannot read raises `GovernanceError` (an approval check that
cannot run is never "approved").
"""

import functools
import json
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, TypeVar

from ._bin import BinaryError, run

F = TypeVar("F", bound=Callable[..., Any])


class GovernanceError(RuntimeError):
    """A governance binary failed or could not be run; `exit_code` and `stderr` say why."""

    def __init__(self, message: str, exit_code: Optional[int] = None, stderr: str = ""):
        super().__init__(message)
        self.exit_code = exit_code
        self.stderr = stderr


def _call(tool: str, args: Sequence[str], ok_codes: Sequence[int] = (0,)):
    try:
        proc = run(tool, list(args))
    except BinaryError as e:
        raise GovernanceError(str(e)) from e
    if proc.returncode not in ok_codes:
        raise GovernanceError(f"`{tool} {' '.join(args[:2])}` exited {proc.returncode}: {proc.stderr.strip()}",
                              proc.returncode, proc.stderr)
    return proc


def _registry(registry: Optional[str]) -> List[str]:
    return ["--registry", registry] if registry else []


def capture(event_type: str, *, skill: Optional[str] = None, outcome: str = "success",
            duration_ms: Optional[float] = None, context: Optional[Dict[str, Any]] = None,
            registry: Optional[str] = None) -> Dict[str, Any]:
    """Records one telemetry event through `telemetry-capture`; returns the event as written."""
    args = _registry(registry) + ["--quiet", "--format", "json", "--event-type", event_type, "--outcome", outcome]
    if skill:
        args += ["--skill-name", skill]
    if duration_ms is not None:
        args += ["--duration-ms", repr(float(duration_ms))]
    for key, value in (context or {}).items():
        args += ["--context", f"{key}:={json.dumps(value)}"]
    proc = _call("telemetry-capture", args)
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError) as e:
        raise GovernanceError(f"telemetry-capture printed no event ({e})") from e


class track:
    """Times a skill and records `skill.executed` with its outcome; a decorator or a context manager.

        @track("data.transform")
        def transform(...): ...

        with track("data.transform", context={"rows": 10}):
            ...

    An exception is recorded as `failure` (its type in the context) and re-raised.
    """

    def __init__(self, skill: str, *, event_type: str = "skill.executed",
                 context: Optional[Dict[str, Any]] = None, registry: Optional[str] = None):
        self.skill, self.event_type, self.registry = skill, event_type, registry
        self.context = dict(context or {})
        self.event: Optional[Dict[str, Any]] = None
        self._start = 0.0

    def __enter__(self) -> "track":
        self._start = time.monotonic()
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        ms = (time.monotonic() - self._start) * 1000.0
        context = dict(self.context)
        if exc_type is not None:
            context["error"] = exc_type.__name__
        self.event = capture(self.event_type, skill=self.skill, outcome="failure" if exc_type else "success",
                             duration_ms=ms, context=context, registry=self.registry)
        return False

    def __call__(self, fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with track(self.skill, event_type=self.event_type, context=self.context, registry=self.registry):
                return fn(*args, **kwargs)
        return wrapper  # type: ignore[return-value]


def diff(old: Optional[str] = None, new: Optional[str] = None, *, registry: Optional[str] = None,
         extra: Sequence[str] = ()) -> Dict[str, Any]:
    """`registry-diff --compare OLD NEW --format json` (versions, registry files or git revisions)."""
    args = _registry(registry) + ["--format", "json"]
    if old is not None and new is not None:
        args += ["--compare", old, new]
    args += list(extra)
    proc = _call("registry-diff", args, ok_codes=(0, 1))
    try:
        result = json.loads(proc.stdout)
    except ValueError as e:
        raise GovernanceError(f"registry-diff printed output that is not JSON ({e})") from e
    if isinstance(result, dict):
        result.setdefault("exit_code", proc.returncode)
    return result


def request_approval(operation: str, *, approvers: str, reason: str, manifest: Optional[str] = None,
                     skill: Optional[str] = None, required: int = 1, environment: Optional[str] = None,
                     args: Optional[Dict[str, str]] = None, expires_in: Optional[str] = None,
                     key: Optional[str] = None, unsigned: bool = False,
                     registry: Optional[str] = None) -> Dict[str, Any]:
    """Opens an approval request (`approval-queue request`); returns its JSON (with its `id`)."""
    cli = _registry(registry) + ["request", "--operation", operation, "--approvers", approvers,
                                 "--required", str(required), "--reason", reason, "--format", "json"]
    cli += _subject(manifest, skill, environment, args)
    if expires_in:
        cli += ["--expires-in", expires_in]
    if key:
        cli += ["--key", key]
    if unsigned:
        cli.append("--unsigned")
    proc = _call("approval-queue", cli, ok_codes=(0, 3))
    try:
        return json.loads(proc.stdout)
    except ValueError as e:
        raise GovernanceError(f"approval-queue printed output that is not JSON ({e})") from e


def check_approval(operation: str, *, manifest: Optional[str] = None, skill: Optional[str] = None,
                   environment: Optional[str] = None, args: Optional[Dict[str, str]] = None,
                   registry: Optional[str] = None) -> str:
    """Whether this exact subject is approved: `approved`, `pending` or `denied` (rejected,
    expired, none). A check that cannot run raises `GovernanceError`: never approved."""
    cli = _registry(registry) + ["check", "--operation", operation] + _subject(manifest, skill, environment, args)
    proc = _call("approval-queue", cli, ok_codes=(0, 1, 3))
    return {0: "approved", 3: "pending", 1: "denied"}[proc.returncode]


def _subject(manifest, skill, environment, args) -> List[str]:
    if (manifest is None) == (skill is None):
        raise GovernanceError("give exactly one of `manifest` and `skill`")
    out = ["--manifest", manifest] if manifest is not None else ["--skill", skill]
    if environment:
        out += ["--environment", environment]
    for k, v in (args or {}).items():
        out += ["--arg", f"{k}={v}"]
    return out
