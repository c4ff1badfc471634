"""Smoke test of the one benchmark command: `bench/run_all.py --quick` on the two
cheapest benchmarks, as a subprocess. Speed is not asserted (figures live in bench/)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_run_all_quick_prints_a_table_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "latest.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run_all.py"), "--quick", "--only", "decode",
         "--only", "markers", "--output", str(out)],
        capture_output=True, text=True, timeout=120, cwd=ROOT, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| figure | value | reference (same run) | ratio | target | met |" in proc.stdout
    assert "decode rate" in proc.stdout
    assert "`wattd mark` wall time" in proc.stdout
    doc = json.loads(out.read_text())
    assert doc["quick"] is True
    assert {"cpu", "cores", "kernel", "python"} <= set(doc["machine"])
    benches = {row["bench"] for row in doc["rows"]}
    assert benches == {"decode", "markers"}
    for row in doc["rows"]:
        assert row["value"] is not None
        if row["reference"]:
            assert row["ratio"] is not None
    assert set(doc["raw"]) == {"decode", "markers"}
