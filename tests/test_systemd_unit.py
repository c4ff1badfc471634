"""The shipped unit: the directives the issue asks for, systemd-analyze verify and security."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "systemd" / "wattd.service"
MAX_EXPOSURE = 2.0


def systemd_analyze() -> str:
    path = shutil.which("systemd-analyze")
    if path is None:
        reason = "systemd-analyze not installed (apt-get install systemd; scripts/test does)"
        if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
            pytest.fail(f"CI: {reason}", pytrace=False)
        pytest.skip(reason)
    return path


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """Sections -> key -> every value in order (keys may repeat in unit files)."""
    sections: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, _, value = line.partition("=")
        sections[section][key.strip()].append(value.strip())
    return sections


@pytest.fixture(scope="module")
def unit() -> dict[str, dict[str, list[str]]]:
    return parse_unit(UNIT.read_text())


def words(values: list[str]) -> set[str]:
    return {w for v in values for w in v.split()}


def test_service_type_watchdog_restart_reload(unit: dict[str, dict[str, list[str]]]) -> None:
    svc = unit["Service"]
    assert svc["Type"] == ["notify"]
    assert svc["NotifyAccess"] == ["main"]
    assert svc["WatchdogSec"] == ["30"]
    assert svc["Restart"] == ["on-failure"]
    assert svc["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert svc["ExecStart"][0].split()[1:3] == ["run", "-c"]
    assert "2" in words(svc["RestartPreventExitStatus"])  # config errors do not loop


def test_ordering(unit: dict[str, dict[str, list[str]]]) -> None:
    after = words(unit["Unit"]["After"])
    assert {"time-sync.target", "network-online.target"} <= after
    assert "network-online.target" in words(unit["Unit"]["Wants"])
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


def test_identity_devices_and_directories(unit: dict[str, dict[str, list[str]]]) -> None:
    svc = unit["Service"]
    assert svc["DynamicUser"] == ["yes"]
    assert words(svc["SupplementaryGroups"]) == {"dialout", "gpio"}
    assert svc["StateDirectory"] == ["wattd"]
    assert svc["ConfigurationDirectory"] == ["wattd"]
    assert svc["DevicePolicy"] == ["closed"]
    allowed = {v.split()[0] for v in svc["DeviceAllow"]}
    assert allowed == {"char-ttyUSB", "char-ttyACM", "char-ttyAMA", "char-ttyS", "char-gpiochip"}
    assert svc["UMask"] == ["0077"]


def test_hardening_set(unit: dict[str, dict[str, list[str]]]) -> None:
    svc = unit["Service"]
    for key, value in {"ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
                       "NoNewPrivileges": "yes", "RestrictNamespaces": "yes",
                       "SystemCallArchitectures": "native", "MemoryDenyWriteExecute": "yes",
                       "LockPersonality": "yes", "ProtectKernelTunables": "yes",
                       "ProtectKernelModules": "yes", "ProtectKernelLogs": "yes",
                       "ProtectControlGroups": "yes", "PrivateUsers": "yes"}.items():
        assert svc[key] == [value], key
    assert svc["CapabilityBoundingSet"] == [""]
    assert words(svc["RestrictAddressFamilies"]) == {"AF_UNIX", "AF_INET", "AF_INET6"}
    assert svc["SystemCallFilter"][:2] == ["@system-service", "~@privileged @resources"]
    # The clock health query (adjtimex, read only) must stay possible.
    assert "adjtimex" in words(svc["SystemCallFilter"][2:])
    assert "ProtectClock" not in svc


def test_security_exposure_offline() -> None:
    analyze = systemd_analyze()
    proc = subprocess.run([analyze, "security", "--offline=true", str(UNIT)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    match = re.search(r"Overall exposure level for wattd\.service: (\d+\.\d+)", proc.stdout)
    assert match, proc.stdout[-2000:]
    assert float(match.group(1)) <= MAX_EXPOSURE, proc.stdout
    # The same through systemd-analyze's own gate (threshold in tenths).
    gate = subprocess.run([analyze, "security", "--offline=true",
                           f"--threshold={int(MAX_EXPOSURE * 10)}", str(UNIT)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert gate.returncode == 0, gate.stdout[-2000:]


def test_security_gate_can_fail(tmp_path: Path) -> None:
    """The rating is sensitive: without the sandbox the same unit is far above 2.0."""
    analyze = systemd_analyze()
    bare = tmp_path / "wattd.service"
    keep = ("[", "Description", "After", "Wants", "Type", "ExecStart", "WantedBy")
    bare.write_text("\n".join(line for line in UNIT.read_text().splitlines()
                              if line.startswith(keep)) + "\n")
    proc = subprocess.run([analyze, "security", "--offline=true", "--threshold=20", str(bare)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode != 0
    assert "UNSAFE" in proc.stdout


def _verify(unit_text: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    analyze = systemd_analyze()
    stub = tmp_path / "wattd-stub"
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    text, n = re.subn(r"^ExecStart=\S+", f"ExecStart={stub}", unit_text, flags=re.MULTILINE)
    assert n == 1
    target = tmp_path / "wattd.service"
    target.write_text(text)
    return subprocess.run([analyze, "verify", str(target)], capture_output=True, text=True,
                          timeout=60, check=False)


def test_verify_passes(tmp_path: Path) -> None:
    proc = _verify(UNIT.read_text(), tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == "", proc.stderr  # not even a warning (unknown key, bad value)


def test_verify_reports_a_typo(tmp_path: Path) -> None:
    proc = _verify(UNIT.read_text().replace("LockPersonality=", "LockPersonalty="), tmp_path)
    assert "Unknown key" in proc.stderr
