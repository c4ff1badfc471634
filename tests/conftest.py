"""Shared pytest fixtures. Server fixtures live in tests/servers.py."""

from __future__ import annotations

import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from tests.servers import (  # noqa: E402, F401 (fixtures are found by name)
    influx_db,
    influxdb_auth_server,
    influxdb_server,
    influxdb_server_fn,
    influxdb_tls_server,
    victoria_label,
    victoria_server,
    victoria_server_fn,
)
