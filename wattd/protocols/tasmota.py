"""Tasmota smart plugs over HTTP (SPEC 8.4). Pure.

``GET /cm?cmnd=Status%2010`` answers ``StatusSNS.ENERGY`` with ``Power`` (W),
``Voltage``, ``Current``, ``Factor`` and ``Total`` (kWh, the energy counter).
A multi-channel device gives lists; ``channel`` picks one. Credentials are
query parameters; a protected device without them answers HTTP 200 with
``{"WARNING": "Need user=...&password=..."}``: an authentication error.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from wattd.protocols.base import DecodeCounters, DecodeError, Event
from wattd.protocols.plausible import RangesLike
from wattd.protocols.plug_json import get_path, number, parse_answer
from wattd.protocols.polled import (
    J_PER_KWH,
    MAINS_PLAUSIBLE,
    CounterTracker,
    count_error,
    implausible,
    measurement,
    plausible_of,
)

STATUS_PATH = "/cm?cmnd=Status%2010"
AUTH_WARNING = {"WARNING": "Need user=<username>&password=<password>"}


def request_path(username: str | None = None, password: str | None = None) -> str:
    if username is None:
        return STATUS_PATH
    user, secret = quote(username, safe=""), quote(password or "", safe="")
    return f"{STATUS_PATH}&user={user}&password={secret}"


def status_body(*, power_w: float, voltage_v: float, current_a: float, pf: float,
                total_kwh: float) -> bytes:
    """A ``Status 10`` answer (simulator, tests): Tasmota rounds Total to 3 decimals."""
    energy = {"TotalStartTime": "2024-01-01T00:00:00", "Total": round(total_kwh, 3),
              "Yesterday": 0.0, "Today": round(total_kwh, 3), "Power": round(power_w),
              "ApparentPower": round(voltage_v * current_a), "ReactivePower": 0,
              "Factor": round(pf, 2), "Voltage": round(voltage_v), "Current": round(current_a, 3)}
    return json.dumps({"StatusSNS": {"Time": "2024-01-01T00:00:00", "ENERGY": energy}}).encode()


def _pick(value: Any, channel: int) -> float | None:
    if isinstance(value, list):
        value = value[channel] if 0 <= channel < len(value) else None
    elif channel != 0:
        return None
    return number(value)


class TasmotaDecoder:
    driver = "tasmota"

    def __init__(self, channel: int = 0, plausible: RangesLike | None = None) -> None:
        self.channel = channel
        self.plausible = plausible_of(plausible, MAINS_PLAUSIBLE)
        self.counters = DecodeCounters()
        self.counter = CounterTracker()

    def decode(self, status: int, body: bytes, t_ns: int) -> Event:
        doc = parse_answer(self.counters, self.driver, status, body, t_ns)
        if isinstance(doc, DecodeError):
            return doc
        if isinstance(doc, dict) and "WARNING" in doc and "StatusSNS" not in doc:
            return count_error(self.counters, self.driver, "auth",
                               f"Tasmota refused: {str(doc['WARNING'])[:80]}", t_ns)
        energy = get_path(doc, "StatusSNS", "ENERGY")
        power_w = _pick(get_path(energy, "Power"), self.channel)
        if power_w is None:
            return count_error(self.counters, self.driver, "missing_field",
                               "no numeric StatusSNS.ENERGY.Power in the answer", t_ns)
        voltage_v = _pick(get_path(energy, "Voltage"), self.channel)
        current_a = _pick(get_path(energy, "Current"), self.channel)
        pf = _pick(get_path(energy, "Factor"), self.channel)
        total_kwh = _pick(get_path(energy, "Total"), self.channel)
        problem = implausible(self.plausible, voltage_v, current_a, power_w)
        if problem:
            return count_error(self.counters, self.driver, "implausible", problem, t_ns)
        self.counters.frames_ok += 1
        counter_j = None if total_kwh is None else total_kwh * J_PER_KWH
        return measurement(t_ns=t_ns, frame_bytes=0, power_w=power_w, voltage_v=voltage_v,
                           current_a=current_a, power_factor=pf,
                           energy_j=self.counter.update(counter_j))
