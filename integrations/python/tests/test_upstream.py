"""Upstream Betty's own scripts, unpacked from the shipped source, governed through the package."""

import json

from conftest import py, tool

HANDLER_CALL = "[sys.executable, policy_handler, manifest_path]"
OUR_CALL = '[sys.executable, "-m", "betty_governance.policy_enforce", manifest_path]'

BAD = """name: data.purge
version: 0.1.0
description: Deletes data and writes secrets
status: active
permissions:
  - filesystem:read
  - filesystem:delete
  - secrets.write
inputs: []
outputs: []
"""
GOOD = """name: data.report
version: 0.1.0
description: Reads data and writes a report
status: active
permissions:
  - filesystem:read
inputs: []
outputs: []
"""
NETWORK = """name: data.fetch
version: 0.1.0
description: Fetches data over HTTP
status: active
permissions:
  - filesystem:read
  - network:http
inputs: []
outputs: []
"""


def one_line_change(home):
    """The documented change: `enforce_policy` runs `python -m betty_governance.policy_enforce`."""
    script = home / "skills" / "registry.update" / "registry_update.py"
    text = script.read_text()
    assert text.count(HANDLER_CALL) == 1, "upstream's enforce_policy call moved"
    script.write_text(text.replace(HANDLER_CALL, OUR_CALL))
    return script


def write_skill(home, name, text):
    d = home / "skills" / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "skill.yaml").write_text(text)
    return d / "skill.yaml"


def registered(home):
    return {s["name"] for s in json.loads((home / "registry" / "skills.json").read_text())["skills"]}


def test_registry_update_blocks_lists_every_violation_registers_good_and_holds_network(upstream, bin_dir):
    script = one_line_change(upstream)
    before = registered(upstream)

    bad = write_skill(upstream, "data.purge", BAD)
    r = py(script, bad, cwd=upstream)
    assert r.returncode != 0, r.stdout + r.stderr
    out = r.stdout + r.stderr
    assert "Policy violations detected" in out, out
    # Every violation, with its policy/rule and file:line.
    assert f"permission-allow-list/top-level-permissions: " in out, out
    # Both offending permissions, each with its own file:line:col (paths relative to the cwd).
    assert out.count("skills/data.purge/skill.yaml:7:5") >= 1, out
    assert out.count("skills/data.purge/skill.yaml:8:5") >= 1, out
    assert "data.purge" not in registered(upstream)

    good = write_skill(upstream, "data.report", GOOD)
    r = py(script, good, cwd=upstream)
    assert r.returncode == 0, r.stdout + r.stderr
    assert registered(upstream) == before | {"data.report"}

    net = write_skill(upstream, "data.fetch", NETWORK)
    direct = py("-m", "betty_governance.policy_enforce", net, cwd=upstream)
    assert direct.returncode == 3, direct.stdout + direct.stderr
    result = json.loads(direct.stdout)
    assert result["ok"] is False and result["approval_pending"] is True
    assert any("[approval pending]" in e and "skills/data.fetch/skill.yaml:7:5" in e for e in result["errors"]), result
    r = py(script, net, cwd=upstream)
    assert r.returncode != 0 and "approval pending" in r.stdout + r.stderr
    assert "data.fetch" not in registered(upstream)


def test_upstream_audit_log_through_the_package_keeps_the_chain_intact(upstream, bin_dir):
    handler = upstream / "skills" / "audit.log" / "audit_log.py"
    # The handler file's body becomes the package's entry point.
    handler.write_text("import sys\nfrom betty_governance.audit_log import main\nsys.exit(main())\n")
    log = upstream / "registry" / "audit_log.json"
    legacy = len(json.loads(log.read_text()))
    for args in (["registry.update", "success", "120"],
                 ["workflow.compose", "failed", "5", '["step 2 failed"]', '{"workflow": "ci"}']):
        r = py(handler, *args, cwd=upstream)
        assert r.returncode == 0, r.stdout + r.stderr
        assert json.loads(r.stdout)["ok"] is True
    entries = json.loads(log.read_text())
    assert len(entries) == legacy + 2
    assert entries[-1]["skill"] == "workflow.compose" and entries[-1]["outcome"] == "failed"
    assert entries[-1]["details"]["errors"] == ["step 2 failed"]
    v = tool(bin_dir, "telemetry-query", "--registry", upstream / "registry", "audit", "verify", "--format", "json")
    assert v.returncode == 0, v.stdout + v.stderr
    report = json.loads(v.stdout)
    assert report["ok"] is True and report["hashed_entries"] == 2 and report["legacy_entries"] == legacy
    # Bad input: exit 1 with a message naming the input, nothing written.
    r = py(handler, "registry.update", "success", "12", "[not json", cwd=upstream)
    assert r.returncode == 1 and "ERRORS_JSON" in json.loads(r.stdout)["errors"][0]
    assert len(json.loads(log.read_text())) == legacy + 2
