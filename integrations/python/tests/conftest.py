"""Shared fixtures: the real binaries (`BETTY_BIN_DIR`, default `target/debug` of this checkout)
and upstream Betty unpacked from the shipped source. Without them a test skips, unless
`BETTY_REQUIRE_ALL=1` (CI), where a skip would hide a failure: then it fails."""

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
TARBALL = ROOT.parent / "shared" / "upstream-betty" / "source" / "betty-bd9e666.tar.gz"
TOOLS = ("policy-enforce", "telemetry-capture", "telemetry-query", "registry-diff", "approval-queue")


def skip_or_fail(reason: str):
    if os.environ.get("BETTY_REQUIRE_ALL") == "1":
        pytest.fail(f"{reason} (BETTY_REQUIRE_ALL=1: a missing prerequisite is a failure, not a skip)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def bin_dir() -> Path:
    d = Path(os.environ.get("BETTY_BIN_DIR") or ROOT / "target" / "debug")
    missing = [t for t in TOOLS if not (d / t).is_file()]
    if missing:
        skip_or_fail(f"Betty binaries {missing} not built in {d} (cargo build --bins)")
    return d


@pytest.fixture
def env(bin_dir, tmp_path, monkeypatch):
    """The environment the package and upstream's scripts run in: our binaries, a fresh registry."""
    registry = tmp_path / "registry"
    shutil.copytree(ROOT / "registry" / "policies", registry / "policies")
    shutil.copytree(ROOT / "registry" / "approvals", registry / "approvals")
    for name in ("skills.json", "agents.json"):
        key = name.split(".")[0]
        (registry / name).write_text(json.dumps({"registry_version": "1.0.0", key: []}))
    for var in ("BETTY_REGISTRY", "BETTY_HOME", "BETTY_POLICY_ACTION"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("BETTY_BIN_DIR", str(bin_dir))
    monkeypatch.setenv("BETTY_REGISTRY", str(registry))
    monkeypatch.setenv("BETTY_USER", "ada@example.com")
    monkeypatch.setenv("HOME", str(tmp_path))
    # The package under test is the installed one (`pip install integrations/python`, or the wheel).
    monkeypatch.setenv("PYTHONPATH", os.environ.get("PYTHONPATH", ""))
    return {"registry": registry, "tmp": tmp_path}


@pytest.fixture
def upstream(env, monkeypatch):
    """Upstream Betty unpacked into a temporary folder, governed by our policy pack: its
    `registry/policies` replaced by the project's, as an installation adopting it would."""
    if not TARBALL.is_file():
        skip_or_fail(f"upstream Betty's source {TARBALL} is missing")
    for mod in ("yaml", "pydantic", "packaging"):
        try:
            __import__(mod)
        except ImportError:
            skip_or_fail(f"upstream Betty needs the Python package `{mod}` (pip install pyyaml pydantic packaging)")
    with tarfile.open(TARBALL) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(env["tmp"] / "up", filter="data")
        else:  # Python before 3.11.4: our own tarball, still unpacked only into tmp
            tar.extractall(env["tmp"] / "up")
    home = env["tmp"] / "up" / "betty"
    registry = home / "registry"
    shutil.rmtree(registry / "policies")
    shutil.copytree(ROOT / "registry" / "policies", registry / "policies")
    shutil.copytree(ROOT / "registry" / "approvals", registry / "approvals", dirs_exist_ok=True)
    monkeypatch.setenv("BETTY_HOME", str(home))
    monkeypatch.delenv("BETTY_REGISTRY")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in [str(home), os.environ["PYTHONPATH"]] if p))
    return home


def py(*args, cwd=None, timeout=120):
    """Runs `python ARGS` in the test's environment."""
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout)


def tool(bin_dir, name, *args, cwd=None):
    return subprocess.run([str(bin_dir / name), *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=120)
