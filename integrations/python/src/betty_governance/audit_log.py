"""A drop-in for upstream Betty's `skills/audit.log/audit_log.py`, writing through the hash chain.

    python -m betty_governance.audit_log SKILL STATUS [MS] [ERRORS_JSON] [METADATA_JSON]

appends through `telemetry-capture audit append` (so `telemetry-query audit verify` stays
intact), prints upstream's JSON response on stdout, exits 0 when appended and 1 otherwise.
Unlike upstream, a bad argument (invalid JSON, huge or control characters) is refused, not
guessed at: nothing is written.
"""

import json
import sys
from typing import Any, Dict, List, Optional

from ._bin import BinaryError, run


def log(skill: str, status: str, duration_ms: Optional[float] = None, errors: Optional[List[Any]] = None,
        metadata: Optional[Dict[str, Any]] = None, *, registry: Optional[str] = None) -> Dict[str, Any]:
    """Appends one entry; returns upstream's response dict (`ok`, `status`, `errors`, `details`)."""
    return append_raw(skill, status,
                      "" if duration_ms is None else str(duration_ms),
                      "" if errors is None else json.dumps(errors),
                      "" if metadata is None else json.dumps(metadata), registry=registry)


def append_raw(skill: str, status: str, ms: str = "", errors_json: str = "", metadata_json: str = "",
               *, registry: Optional[str] = None) -> Dict[str, Any]:
    args = ["--quiet"] + (["--registry", registry] if registry else [])
    args += ["audit", "append", "--", skill, status, ms, errors_json, metadata_json]
    try:
        proc = run("telemetry-capture", args)
    except BinaryError as e:
        return _response(False, [str(e)])
    head = proc.stdout.strip()
    if proc.returncode != 0 or ":" not in head:
        message = proc.stderr.strip() or f"telemetry-capture exited {proc.returncode}"
        return _response(False, [message])
    seq, _, digest = head.partition(":")
    return _response(True, [], {"status": "success", "audit_entry": {"skill": skill, "status": status},
                                "head": {"seq": int(seq), "hash": digest}})


def _response(ok: bool, errors: List[str], details: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    response: Dict[str, Any] = {"ok": ok, "status": "success" if ok else "failed", "errors": errors,
                                "path": "audit_log.json"}
    if details is not None:
        response["details"] = details
    return response


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 2:
        response = _response(False, ["Usage: audit_log.py <skill_name> <status> [duration_ms] [errors] [metadata]"])
        print(json.dumps(response, indent=2))
        return 1
    padded = list(argv[:5]) + [""] * (5 - min(len(argv), 5))
    response = append_raw(*padded)
    print(json.dumps(response, indent=2))
    return 0 if response["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
