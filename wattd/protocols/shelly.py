"""Shelly smart plugs and relays, Gen1 and Gen2+ HTTP APIs (SPEC 8.4). Pure.

``GET /shelly`` tells the generation: Gen2+ answers carry ``gen`` (2, 3, 4),
Gen1 answers have none. Gen2+: ``GET /rpc/Switch.GetStatus?id=<channel>`` with
``apower`` (W), ``voltage``, ``current``, ``pf`` and ``aenergy.total`` (Wh).
Gen1: ``GET /status`` with ``meters[channel].power`` (W) and
``meters[channel].total`` (watt-minutes). Gen2+ uses HTTP digest auth, Gen1
basic auth (the transport's job).
"""

from __future__ import annotations

import json
from typing import Any

from wattd.protocols.base import DecodeCounters, DecodeError, Event
from wattd.protocols.plausible import RangesLike
from wattd.protocols.plug_json import get_path, number, parse_answer
from wattd.protocols.polled import (
    J_PER_WH,
    MAINS_PLAUSIBLE,
    CounterTracker,
    count_error,
    implausible,
    measurement,
    plausible_of,
)

INFO_PATH = "/shelly"
J_PER_WATT_MINUTE = 60.0


def status_path(gen: int, channel: int) -> str:
    return f"/rpc/Switch.GetStatus?id={channel}" if gen >= 2 else "/status"


def info_body(gen: int, *, auth: bool = False) -> bytes:
    """A ``/shelly`` answer of this generation (simulator, tests)."""
    if gen >= 2:
        doc: dict[str, Any] = {"id": "shellyplusplugs-sim", "model": "SNPL-00112EU",
                               "gen": gen, "fw_id": "sim", "auth_en": auth}
    else:
        doc = {"type": "SHPLG-S", "mac": "000000000000", "auth": auth, "fw": "sim"}
    return json.dumps(doc).encode()


def status_body(gen: int, channel: int, *, power_w: float, voltage_v: float, current_a: float,
                pf: float, energy_wh: float) -> bytes:
    """A status answer of this generation (simulator, tests). Gen1 reports the
    counter in whole watt-minutes and has no voltage in ``meters``."""
    if gen >= 2:
        doc: dict[str, Any] = {"id": channel, "source": "init", "output": True,
                               "apower": round(power_w, 1), "voltage": round(voltage_v, 1),
                               "current": round(current_a, 3), "pf": round(pf, 2),
                               "aenergy": {"total": round(energy_wh, 3),
                                           "by_minute": [0, 0, 0], "minute_ts": 0},
                               "temperature": {"tC": 30.0}}
    else:
        meters = [{"power": 0.0, "is_valid": True, "total": 0} for _ in range(channel + 1)]
        meters[channel] = {"power": round(power_w, 2), "overpower": 0.0, "is_valid": True,
                           "timestamp": 0, "total": int(energy_wh * 60)}
        doc = {"relays": [{"ison": True}], "meters": meters}
    return json.dumps(doc).encode()


def decode_info(counters: DecodeCounters, status: int, body: bytes) -> int | DecodeError:
    """The generation from a ``/shelly`` answer (1 when it has no ``gen``)."""
    doc = parse_answer(counters, "shelly", status, body, 0)
    if isinstance(doc, DecodeError):
        return doc
    if not isinstance(doc, dict):
        return count_error(counters, "shelly", "garbage", "/shelly is not a JSON object")
    gen = doc.get("gen")
    if gen is None:
        return 1
    if isinstance(gen, bool) or not isinstance(gen, int) or gen < 2:
        return count_error(counters, "shelly", "garbage", f"/shelly gen {gen!r}")
    return gen


class ShellyDecoder:
    driver = "shelly"

    def __init__(self, gen: int, channel: int = 0, plausible: RangesLike | None = None) -> None:
        self.gen = gen
        self.channel = channel
        self.plausible = plausible_of(plausible, MAINS_PLAUSIBLE)
        self.counters = DecodeCounters()
        self.counter = CounterTracker()

    def request_path(self) -> str:
        return status_path(self.gen, self.channel)

    def decode(self, status: int, body: bytes, t_ns: int) -> Event:
        doc = parse_answer(self.counters, self.driver, status, body, t_ns)
        if isinstance(doc, DecodeError):
            return doc
        if self.gen >= 2:
            power_w = number(get_path(doc, "apower"))
            voltage_v = number(get_path(doc, "voltage"))
            current_a = number(get_path(doc, "current"))
            pf = number(get_path(doc, "pf"))
            total_wh = number(get_path(doc, "aenergy", "total"))
            counter_j = None if total_wh is None else total_wh * J_PER_WH
            where = "apower"
        else:
            meter = get_path(doc, "meters", self.channel)
            power_w = number(get_path(meter, "power"))
            voltage_v = current_a = pf = None
            total_wmin = number(get_path(meter, "total"))
            counter_j = None if total_wmin is None else total_wmin * J_PER_WATT_MINUTE
            where = f"meters[{self.channel}].power"
        if power_w is None:
            return count_error(self.counters, self.driver, "missing_field",
                               f"no numeric {where} in the answer", t_ns)
        problem = implausible(self.plausible, voltage_v, current_a, power_w)
        if problem:
            return count_error(self.counters, self.driver, "implausible", problem, t_ns)
        self.counters.frames_ok += 1
        return measurement(t_ns=t_ns, frame_bytes=0, power_w=power_w, voltage_v=voltage_v,
                           current_a=current_a, power_factor=None if pf is None else abs(pf),
                           energy_j=self.counter.update(counter_j))
