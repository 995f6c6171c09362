"""A drop-in for upstream Betty's `skills/policy.enforce/policy_enforce.py`, backed by `policy-enforce`.

    python -m betty_governance.policy_enforce [MANIFEST] [--batch] [--strict] [--action ACTION]

prints only JSON on stdout, in upstream's shape (`success`, `ok`, `errors` as
`policy/rule: message (file:line:col)` strings, `violations`, `violation_count`; with `--batch`
or no manifest, `mode: "batch"`, `total_manifests`, `passed`, `failed`, `results`), and exits
0 when the check passes, 1 when it is blocked or could not run, 3 when an approval is pending.

Upstream's handler file can become `from betty_governance.policy_enforce import main`, or
`registry_update.py` can run `python -m betty_governance.policy_enforce MANIFEST`.
"""

import argparse
import json
import os
import sys
from typing import Any, Dict, List, Optional

from ._bin import BinaryError, run

EXIT_PASSED, EXIT_BLOCKED, EXIT_PENDING = 0, 1, 3
#: What `registry_update.py` calls the check for; `BETTY_POLICY_ACTION` or `--action` overrides.
DEFAULT_ACTION = "register"
ACTIONS = ("create", "update", "register", "execute", "deploy", "audit")


class PolicyViolation(Exception):
    """The check blocked (or is waiting for an approval). `result` is the whole result dict."""

    def __init__(self, result: Dict[str, Any]):
        self.result = result
        self.violations: List[Dict[str, Any]] = result.get("violations", [])
        self.pending: bool = bool(result.get("approval_pending"))
        super().__init__("; ".join(result.get("errors", [])) or result.get("message", "blocked"))


def _violation(f: Dict[str, Any]) -> Dict[str, Any]:
    return {
        "field": f.get("field", ""),
        "rule": f.get("rule", ""),
        "message": f.get("message", ""),
        "severity": f.get("severity", "error"),
        "policy": f.get("policy", ""),
        "level": f.get("level", ""),
        "file": f.get("file", ""),
        "line": f.get("line"),
        "column": f.get("column"),
        "detail": f.get("detail", ""),
    }


def _error_text(f: Dict[str, Any]) -> str:
    where = f"{f.get('file', '?')}:{f.get('line', '?')}:{f.get('column', '?')}"
    text = f"{f.get('policy', '?')}/{f.get('rule', '?')}: {f.get('message', '')}"
    if f.get("level") == "pending":
        text += " [approval pending]"
    return f"{text} ({where})"


def _blocked(message: str, path: Optional[str], batch: bool) -> Dict[str, Any]:
    result: Dict[str, Any] = {
        "success": False, "ok": False, "exit_code": EXIT_BLOCKED, "message": message,
        "errors": [message], "violations": [], "violation_count": 0,
    }
    if batch:
        result.update({"mode": "batch", "total_manifests": 0, "passed": 0, "failed": 0, "results": []})
    else:
        result["path"] = path
    return result


def _map(report: Dict[str, Any], path: Optional[str], batch: bool) -> Dict[str, Any]:
    code = report.get("exit_code")
    if code not in (EXIT_PASSED, EXIT_BLOCKED, EXIT_PENDING) or not isinstance(report.get("findings"), list):
        raise ValueError("the report has no valid `exit_code` and `findings`")
    findings = [f for f in report["findings"] if isinstance(f, dict)]
    shown = [f for f in findings if f.get("level") != "approved"]
    stops = [f for f in findings if f.get("level") in ("blocking", "pending")]
    ok = code == EXIT_PASSED
    result: Dict[str, Any] = {
        "success": ok,
        "ok": ok,
        "exit_code": code,
        "outcome": report.get("outcome"),
        "approval_pending": code == EXIT_PENDING,
        "errors": [_error_text(f) for f in stops],
        "violations": [_violation(f) for f in shown],
        "violation_count": len(shown),
    }
    if ok:
        result["message"] = "Policy check passed"
    elif code == EXIT_PENDING:
        result["message"] = "Approval pending: " + ", ".join(
            sorted({f.get("policy", "?") for f in stops if f.get("level") == "pending"}))
    else:
        result["message"] = f"Found {len(stops)} policy violation(s)"
    if batch:
        targets = [t for t in report.get("targets", []) if isinstance(t, dict)]
        results = []
        for t in targets:
            mine = [f for f in shown if f.get("target") == t.get("name") and f.get("target_kind") == t.get("kind")]
            results.append({
                "path": t.get("source"), "manifest_type": t.get("kind"), "name": t.get("name"),
                "success": t.get("outcome") == "passed", "outcome": t.get("outcome"),
                "violations": [_violation(f) for f in mine], "violation_count": len(mine),
            })
        passed = sum(1 for r in results if r["success"])
        result.update({
            "mode": "batch", "total_manifests": len(results), "passed": passed,
            "failed": len(results) - passed, "results": results,
        })
    else:
        targets = report.get("targets") or [{}]
        result["path"] = path
        result["manifest_type"] = targets[0].get("kind") if isinstance(targets[0], dict) else None
    return result


def enforce(manifest: Optional[str] = None, action: Optional[str] = None, *, batch: bool = False,
            strict: bool = False, environment: Optional[str] = None, registry: Optional[str] = None,
            raise_on_violation: bool = False, timeout: float = 60.0) -> Dict[str, Any]:
    """Checks `manifest` (a path; `None` or `batch=True` checks every skill and agent) for `action`.

    Returns upstream's result dict (with `exit_code`: 0 passed, 1 blocked or could not run, 3
    approval pending). Fails closed: a missing binary or unreadable output is a blocked result.
    With `raise_on_violation`, anything but a pass raises `PolicyViolation`.
    """
    batch = batch or manifest is None
    action = action or os.environ.get("BETTY_POLICY_ACTION") or DEFAULT_ACTION
    args = ["--format", "json"]
    if action not in ("", "none"):
        args += ["--action", action]
    if strict:
        args.append("--strict")
    if environment:
        args += ["--environment", environment]
    if registry:
        args += ["--registry", registry]
    args += ["--all"] if batch else [str(manifest)]
    try:
        proc = run("policy-enforce", args, timeout=timeout)
        if proc.returncode not in (EXIT_PASSED, EXIT_BLOCKED, EXIT_PENDING):
            why = proc.stderr.strip().splitlines()
            raise BinaryError(f"policy-enforce exited {proc.returncode}: " + (" ".join(why[-3:]) or "no message"))
        try:
            report = json.loads(proc.stdout)
            result = _map(report, None if batch else str(manifest), batch)
        except (ValueError, AttributeError, TypeError) as e:
            raise BinaryError(f"policy-enforce printed output that is not its JSON report ({e})") from e
        if result["exit_code"] != proc.returncode:
            raise BinaryError("policy-enforce's exit code and its report disagree")
    except BinaryError as e:
        result = _blocked(f"Policy enforcement could not run, so it blocks: {e}", None if batch else str(manifest), batch)
    if raise_on_violation and not result["ok"]:
        raise PolicyViolation(result)
    return result


def main(argv: Optional[List[str]] = None) -> None:
    """Upstream's command line: JSON on stdout, then exits the process 0 / 1 / 3 (as upstream's
    `main` did, so a handler file whose body is `main()` cannot pass by accident)."""
    sys.exit(run_cli(argv))


def run_cli(argv: Optional[List[str]] = None) -> int:
    """[`main`] without the exit: prints the JSON, returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m betty_governance.policy_enforce",
                                     description="Enforce policy rules for skill and agent manifests")
    parser.add_argument("manifest_path", nargs="?", help="Path to manifest file to validate (omit for batch mode)")
    parser.add_argument("--batch", action="store_true", help="Validate all manifests in skills/ and agents/ directories")
    parser.add_argument("--strict", action="store_true", help="Treat warnings as errors")
    parser.add_argument("--action", choices=ACTIONS, default=None,
                        help=f"Enforcement point (default: BETTY_POLICY_ACTION or `{DEFAULT_ACTION}`)")
    parser.add_argument("--environment", default=None, help="Deployment environment (with --action deploy)")
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        # Usage errors block too, still as JSON on stdout.
        if e.code not in (0, None):
            print(json.dumps(_blocked("invalid arguments (see --help)", None, False), indent=2))
            return EXIT_BLOCKED
        return 0
    result = enforce(None if args.batch else args.manifest_path, args.action, batch=args.batch,
                     strict=args.strict, environment=args.environment)
    print(json.dumps(result, indent=2))
    return int(result["exit_code"])


if __name__ == "__main__":
    main()
