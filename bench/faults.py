"""The fault suite against the real daemon: what was injected, what survived, what was lost.

    .venv/bin/python bench/faults.py            # reduced sizes (as tests/test_faults.py)
    .venv/bin/python bench/faults.py --full     # full size: 100 unplugs, 40 database
                                                # outages, 20 SIGKILLs, 30 s flood, ...

Scenarios are in tests/fault_scenarios.py. Prints one JSON object (each scenario's
report also goes to stderr as it finishes); exit status 1 if any check failed.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fault_scenarios import run_all


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--full", action="store_true", help="full size (minutes)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="wattd-faults-") as tmp:
        results = run_all(Path(tmp), args.full)
    out = {"bench": "faults", "size": "full" if args.full else "reduced",
           "ok": all(r.ok for r in results), "faults": [r.as_dict() for r in results]}
    print(json.dumps(out))
    sys.exit(0 if out["ok"] else 1)


if __name__ == "__main__":
    main()
