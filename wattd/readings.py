"""The reading record that flows from sources through the pipeline to the journal."""

from __future__ import annotations

from dataclasses import dataclass, field

from wattd.lineprotocol import FieldValue, format_field, format_head

POWER_MEASUREMENT = "wattd_power"

# Per (meter, tags): [escaped ``wattd_power,tag=value,...`` head, last power_w
# object, its repr, last energy_j object, its repr]. A meter's tags change only
# at run boundaries, so a handful of entries serve every reading; a decoder
# hands on the same float object while a value is held (power between Preg
# refreshes, energy between pulses), so its repr is reused by identity (an
# identity match is the same value, signed zero included; the entry keeps the
# object alive, so its id cannot be reused meanwhile).
_LineCache = list[object]
_CACHE: dict[tuple[str, tuple[tuple[str, str], ...]], _LineCache] = {}
_CACHE_MAX = 4096


def _cache_entry(meter: str, tags: dict[str, str]) -> _LineCache:
    key = (meter, tuple(tags.items()))
    entry = _CACHE.get(key)
    if entry is None:
        merged = dict(tags)
        merged["meter"] = meter
        entry = [format_head(POWER_MEASUREMENT, merged), None, "", None, ""]
        if len(_CACHE) >= _CACHE_MAX:
            _CACHE.clear()
        _CACHE[key] = entry
    return entry


# Voltage, current, apparent power and power factor are quotients of chip
# registers: their 17-digit reprs are false precision (the chips resolve about
# four digits) and cost a third of the event loop's time per reading. They are
# written with DERIVED_DIGITS significant digits. power_w and energy_j are
# written exactly (shortest round-trip repr): energies are integrated from
# them, and the report must reproduce the daemon's joules bit for bit.
DERIVED_DIGITS = 7
DERIVED_FIELDS = ("voltage_v", "current_a", "apparent_va", "power_factor")
_DERIVED_FORMAT = f"%.{DERIVED_DIGITS}g"


def format_derived(value: float) -> str:
    """A derived field's value as written (ValueError if not finite)."""
    if value - value != 0.0:
        raise ValueError(f"line protocol cannot carry {value!r}")
    return _DERIVED_FORMAT % value


@dataclass(slots=True)
class Reading:
    meter: str
    t_ns: int  # CLOCK_REALTIME ns: estimated moment the frame's first byte left the meter
    t_boot_ns: int  # the same instant on CLOCK_BOOTTIME (durations, online integration)
    power_w: float | None
    voltage_v: float | None = None
    current_a: float | None = None
    apparent_va: float | None = None
    power_factor: float | None = None
    energy_j: float | None = None  # meter's cumulative energy since the daemon started
    status: str = "ok"
    clock_synced: bool = True
    tags: dict[str, str] = field(default_factory=dict)  # static meter tags + run tags

    def fields(self) -> dict[str, FieldValue]:
        out: dict[str, FieldValue] = {}
        for name in ("power_w", "voltage_v", "current_a", "apparent_va", "power_factor",
                     "energy_j"):
            value = getattr(self, name)
            if value is not None:
                out[name] = float(value)
        out["clock_synced"] = self.clock_synced
        return out

    def to_line(self) -> str:
        """The ``wattd_power`` point: ``format_line(POWER_MEASUREMENT, {**tags,
        "meter": meter}, fields(), t_ns)`` with the derived fields in
        ``DERIVED_DIGITS`` digits (ValueError on a non-finite value), with the
        head cached and a fast path for the usual reading (every value a float)."""
        p, v, i, s, pf, e = (self.power_w, self.voltage_v, self.current_a, self.apparent_va,
                             self.power_factor, self.energy_j)
        synced = self.clock_synced
        t_ns = self.t_ns
        if (type(p) is float and type(v) is float and type(i) is float and type(s) is float
                and type(pf) is float and type(e) is float and type(t_ns) is int
                and (synced is True or synced is False)):
            total = p + v + i + s + pf + e
            # Finite values only (inf - inf and nan are not 0); an overflowing sum
            # of finite values only sends the reading down the general path.
            if total - total == 0.0:
                entry = _cache_entry(self.meter, self.tags)
                if p is entry[1]:
                    p_text = entry[2]
                else:
                    entry[1] = p
                    p_text = entry[2] = repr(p)
                if e is entry[3]:
                    e_text = entry[4]
                else:
                    entry[3] = e
                    e_text = entry[4] = repr(e)
                flag = "true" if synced else "false"
                return (f"{entry[0]} power_w={p_text},voltage_v={_DERIVED_FORMAT % v},"
                        f"current_a={_DERIVED_FORMAT % i},apparent_va={_DERIVED_FORMAT % s},"
                        f"power_factor={_DERIVED_FORMAT % pf},"
                        f"energy_j={e_text},clock_synced={flag} {t_ns}")
        return self._general_line()

    def _general_line(self) -> str:
        # Field names need no escaping.
        body = ",".join([
            f"{name}={format_derived(value)}"
            if name in DERIVED_FIELDS and isinstance(value, float) else
            f"{name}={format_field(value)}"
            for name, value in self.fields().items()])
        return f"{_cache_entry(self.meter, self.tags)[0]} {body} {int(self.t_ns)}"
