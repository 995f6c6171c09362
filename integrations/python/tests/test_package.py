"""The package against the real binaries: shapes, exit codes, and failing closed."""

import json
import os
import stat

import pytest

import betty_governance as bg
from betty_governance import audit_log, policy_enforce
from conftest import py, tool

GOOD = "name: data.report\nversion: 0.1.0\ndescription: Reads data\nstatus: active\npermissions:\n  - filesystem:read\n"
BAD = "name: BadName\nversion: 0.1.0\ndescription: Bad\nstatus: active\npermissions:\n  - filesystem:delete\n"


def manifest(tmp, name, text):
    d = tmp / "skills" / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "skill.yaml").write_text(text)
    return d / "skill.yaml"


def test_enforce_passes_blocks_and_raises(env):
    good = manifest(env["tmp"], "data.report", GOOD)
    r = bg.enforce(str(good))
    assert (r["ok"], r["success"], r["exit_code"], r["errors"]) == (True, True, 0, []), r
    bad = manifest(env["tmp"], "bad", BAD)
    r = bg.enforce(str(bad))
    assert (r["ok"], r["exit_code"]) == (False, 1)
    assert r["violation_count"] == len(r["violations"]) >= 2
    assert any(e.startswith("skill-naming-convention/") and f"{bad}:1:7)" in e for e in r["errors"]), r["errors"]
    assert all(v["file"] and v["line"] for v in r["violations"])
    with pytest.raises(bg.PolicyViolation) as e:
        bg.enforce(str(bad), raise_on_violation=True)
    assert e.value.violations and not e.value.pending


def test_the_module_prints_only_json_and_exits_like_upstream(env):
    good = manifest(env["tmp"], "data.report", GOOD)
    bad = manifest(env["tmp"], "bad", BAD)
    r = py("-m", "betty_governance.policy_enforce", good)
    assert r.returncode == 0 and json.loads(r.stdout)["ok"] is True
    r = py("-m", "betty_governance.policy_enforce", bad)
    assert r.returncode == 1
    out = json.loads(r.stdout)  # the whole stdout is one JSON document
    assert out["ok"] is False and out["errors"]
    r = py("-m", "betty_governance.policy_enforce", "--batch", cwd=env["tmp"])
    out = json.loads(r.stdout)
    assert out["mode"] == "batch" and out["total_manifests"] == 2, out
    assert (out["passed"], out["failed"]) == (1, 1) and r.returncode == 1
    r = py("-m", "betty_governance.policy_enforce", "--no-such-flag")
    assert r.returncode == 1 and json.loads(r.stdout)["ok"] is False


def test_main_exits_so_a_handler_cannot_pass_by_accident(env):
    bad = manifest(env["tmp"], "bad", BAD)
    handler = env["tmp"] / "policy_enforce.py"
    # The README's documented one-liner for upstream's handler file.
    handler.write_text("from betty_governance.policy_enforce import main; main()\n")
    r = py(handler, bad)
    assert r.returncode == 1 and json.loads(r.stdout)["ok"] is False


def test_fails_closed_without_binaries_or_with_garbage(env, tmp_path, monkeypatch):
    good = manifest(env["tmp"], "data.report", GOOD)
    monkeypatch.setenv("BETTY_BIN_DIR", str(tmp_path / "nowhere"))
    r = bg.enforce(str(good))
    assert (r["ok"], r["exit_code"]) == (False, 1) and "could not run" in r["errors"][0]
    with pytest.raises(bg.PolicyViolation):
        bg.enforce(str(good), raise_on_violation=True)
    fake = tmp_path / "fake"
    fake.mkdir()
    for name, body in (("policy-enforce", 'echo "✅ Policy check passed"; exit 0'),
                       ("telemetry-capture", "echo looks-fine; exit 0"),
                       ("approval-queue", "exit 0")):
        p = fake / name
        p.write_text(f"#!/bin/sh\n{body}\n")
        p.chmod(p.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("BETTY_BIN_DIR", str(fake))
    r = bg.enforce(str(good))
    assert r["ok"] is False and "not its JSON report" in r["errors"][0], r
    assert audit_log.append_raw("s", "success")["ok"] is False
    monkeypatch.setenv("BETTY_BIN_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(bg.GovernanceError):
        bg.check_approval("deploy", skill="data.report")
    with pytest.raises(bg.GovernanceError):
        bg.capture("skill.executed")


def test_capture_and_track_record_events(env, bin_dir):
    e = bg.capture("skill.validated", skill="data.report", duration_ms=12.5, context={"rows": 3})
    assert (e["event_type"], e["skill_name"], e["duration_ms"], e["context"]["rows"]) == (
        "skill.validated", "data.report", 12.5, 3)

    @bg.track("data.transform")
    def work(x):
        return x * 2

    assert work(21) == 42
    with pytest.raises(ZeroDivisionError):
        with bg.track("data.divide", context={"n": 0}):
            1 / 0
    lines = (env["registry"] / "telemetry" / "events.jsonl").read_text().splitlines()
    events = [json.loads(line) for line in lines]
    by_skill = {ev["skill_name"]: ev for ev in events}
    assert by_skill["data.transform"]["outcome"] == "success"
    assert by_skill["data.divide"]["outcome"] == "failure"
    assert by_skill["data.divide"]["context"]["error"] == "ZeroDivisionError"
    assert by_skill["data.divide"]["duration_ms"] >= 0


def test_audit_log_module_and_legacy_adoption(env, bin_dir):
    reg = env["registry"]
    r = py("-m", "betty_governance.audit_log", "data.report", "success", "12", "[]", '{"k": "v"}')
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(r.stdout)["details"]["head"]["seq"] == 0
    # An old writer (upstream's audit.log) appends after the chain: reported, then adopted.
    log = reg / "audit_log.json"
    entries = json.loads(log.read_text())
    entries.append({"timestamp": "2025-11-02T10:00:00+00:00", "skill": "old.writer", "status": "success"})
    log.write_text(json.dumps(entries, indent=2))
    v = json.loads(tool(bin_dir, "telemetry-query", "audit", "verify", "--format", "json").stdout)
    assert v["ok"] is True and v["legacy_appended"]["from"] == 1 and v["adopted_entries"] == 0
    a = tool(bin_dir, "telemetry-capture", "audit", "adopt")
    assert a.returncode == 0 and a.stdout.startswith("2:"), a.stdout + a.stderr
    v = json.loads(tool(bin_dir, "telemetry-query", "audit", "verify", "--format", "json").stdout)
    assert (v["ok"], v["legacy_appended"], v["adopted_entries"]) == (True, None, 1)
    assert json.loads(log.read_text())[-1]["operation"] == "audit.adopt"
    # Huge and control-character input: refused, nothing written.
    size = log.stat().st_size
    for args in (["s", "ok", "1", json.dumps(["x" * 70000])], ["s\x1b[2J", "ok"]):
        r = tool(bin_dir, "telemetry-capture", "audit", "append", *args)
        assert r.returncode == 2 and "nothing was written" in r.stderr, r.stderr
    assert log.stat().st_size == size


def test_approvals_check_and_request(env):
    good = manifest(env["tmp"], "data.report", GOOD)
    assert bg.check_approval("deploy", manifest=str(good), environment="production") == "denied"
    req = bg.request_approval("deploy", manifest=str(good), environment="staging", approvers="security",
                              reason="test", unsigned=True)
    assert req.get("id", "").startswith("apr-"), req
    assert bg.check_approval("deploy", manifest=str(good), environment="staging") == "pending"
    with pytest.raises(bg.GovernanceError):
        bg.check_approval("deploy")
