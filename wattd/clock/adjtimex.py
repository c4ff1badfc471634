"""Read-only kernel clock state through ``adjtimex(2)`` (modes=0: no privileges needed).

Whichever NTP daemon disciplines the clock (chrony, ntpd, systemd-timesyncd),
the kernel holds the verdict: the ``STA_UNSYNC`` status flag, the maximum and
estimated error (microseconds) and the return code (``TIME_OK`` ...
``TIME_ERROR``). See ``wattd/clock/health.py`` for how wattd judges them.

Struct layout: glibc's ``adjtimex`` symbol takes the *native* ``struct timex``
whose integer fields are C ``long`` (``__syscall_slong_t``) and whose ``time``
is a ``struct timeval`` of two longs. ``ctypes.c_long`` follows the platform:
64-bit on x86_64 and aarch64, 32-bit on armv7/armhf (Raspberry Pi OS 32-bit).
On armhf built with 64-bit time_t, C code is redirected to ``__adjtimex64``
with a different layout, but the plain ``adjtimex`` symbol we call through
ctypes keeps the legacy all-``long`` layout, which is what this declares.
(The x32 ABI, 64-bit fields with a 32-bit long, is not supported.) The 44
trailing reserved bytes are declared so the kernel never writes past our buffer.
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass
from typing import Protocol

# adjtimex return codes (clock state)
TIME_OK = 0
TIME_INS = 1
TIME_DEL = 2
TIME_OOP = 3
TIME_WAIT = 4
TIME_ERROR = 5
STATE_NAMES = {TIME_OK: "TIME_OK", TIME_INS: "TIME_INS", TIME_DEL: "TIME_DEL",
               TIME_OOP: "TIME_OOP", TIME_WAIT: "TIME_WAIT", TIME_ERROR: "TIME_ERROR"}

# status bits
STA_PLL = 0x0001
STA_PPSFREQ = 0x0002
STA_PPSTIME = 0x0004
STA_FLL = 0x0008
STA_INS = 0x0010
STA_DEL = 0x0020
STA_UNSYNC = 0x0040
STA_FREQHOLD = 0x0080
STA_PPSSIGNAL = 0x0100
STA_PPSJITTER = 0x0200
STA_PPSWANDER = 0x0400
STA_PPSERROR = 0x0800
STA_CLOCKERR = 0x1000
STA_NANO = 0x2000
STA_MODE = 0x4000
STA_CLK = 0x8000
STATUS_NAMES: tuple[tuple[int, str], ...] = (
    (STA_PLL, "PLL"), (STA_PPSFREQ, "PPSFREQ"), (STA_PPSTIME, "PPSTIME"), (STA_FLL, "FLL"),
    (STA_INS, "INS"), (STA_DEL, "DEL"), (STA_UNSYNC, "UNSYNC"), (STA_FREQHOLD, "FREQHOLD"),
    (STA_PPSSIGNAL, "PPSSIGNAL"), (STA_PPSJITTER, "PPSJITTER"), (STA_PPSWANDER, "PPSWANDER"),
    (STA_PPSERROR, "PPSERROR"), (STA_CLOCKERR, "CLOCKERR"), (STA_NANO, "NANO"),
    (STA_MODE, "MODE"), (STA_CLK, "CLK"),
)

NTP_PHASE_LIMIT_US = 16_000_000
"""The kernel caps maxerror here (16 s); reaching it sets STA_UNSYNC (kernel/time/ntp.c)."""

KERNEL_SLEW_PPM = 500
"""The kernel grows maxerror by this much per second between NTP updates (MAXFREQ)."""


class _Timeval(ctypes.Structure):
    _fields_ = (("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long))


class Timex(ctypes.Structure):
    """Native ``struct timex`` (see module docstring for the layout argument)."""

    _fields_ = (
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("constant", ctypes.c_long),
        ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long),
        ("time", _Timeval),
        ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long),
        ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long),
        ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long),
        ("tai", ctypes.c_int),
        ("_reserved", ctypes.c_int * 11),
    )


@dataclass(slots=True, frozen=True)
class KernelClockState:
    """One snapshot of the kernel's NTP state."""

    return_code: int  # TIME_OK ... TIME_ERROR
    status: int  # STA_* bits
    maxerror_us: int
    esterror_us: int
    offset_ns: int = 0  # remaining PLL offset (the kernel reports us or ns: normalised)
    freq_ppm: float = 0.0
    constant: int = 0
    tick_us: int = 0
    tai_s: int = 0

    @property
    def unsync_flag(self) -> bool:
        return bool(self.status & STA_UNSYNC)

    @property
    def state_name(self) -> str:
        return STATE_NAMES.get(self.return_code, f"state_{self.return_code}")

    @property
    def flags(self) -> list[str]:
        return [name for bit, name in STATUS_NAMES if self.status & bit]

    @property
    def error_estimate_known(self) -> bool:
        """True when an NTP daemon maintains a real error estimate.

        chrony and ntpd write esterror/maxerror on every update. systemd-timesyncd
        writes maxerror=0 and esterror=0 on every update (then the kernel grows
        maxerror by 500 us/s), so ``esterror == 0`` means "no estimate". A kernel
        nobody disciplines sits at the 16 s phase limit.
        """
        return 0 < self.esterror_us < NTP_PHASE_LIMIT_US and self.maxerror_us < NTP_PHASE_LIMIT_US

    def as_dict(self) -> dict[str, object]:
        return {"state": self.state_name, "status": self.flags, "unsync_flag": self.unsync_flag,
                "maxerror_ms": self.maxerror_us / 1000, "esterror_ms": self.esterror_us / 1000,
                "offset_ms": self.offset_ns / 1e6, "freq_ppm": round(self.freq_ppm, 3),
                "tai_s": self.tai_s}


class ClockStateReader(Protocol):
    """Where kernel clock state comes from (injectable: a test machine's cannot be set)."""

    def read(self) -> KernelClockState:
        """One snapshot. Raises OSError when the kernel refuses."""
        ...


def state_from_timex(rc: int, tx: Timex) -> KernelClockState:
    offset_ns = tx.offset if tx.status & STA_NANO else tx.offset * 1000
    return KernelClockState(
        return_code=rc, status=tx.status, maxerror_us=tx.maxerror, esterror_us=tx.esterror,
        offset_ns=offset_ns, freq_ppm=tx.freq / 65536.0, constant=tx.constant,
        tick_us=tx.tick, tai_s=tx.tai,
    )


class KernelReader:
    """The real kernel, through libc's ``adjtimex`` with ``modes = 0`` (read only)."""

    __slots__ = ("_adjtimex",)

    def __init__(self) -> None:
        # The process's own symbols, libc among them (ctypes.util.find_library would
        # run ldconfig and import a megabyte of modules for the same answer).
        libc = ctypes.CDLL(None, use_errno=True)
        func = libc.adjtimex
        func.argtypes = (ctypes.POINTER(Timex),)
        func.restype = ctypes.c_int
        self._adjtimex = func

    def read(self) -> KernelClockState:
        tx = Timex()
        tx.modes = 0  # read only: never changes the clock, needs no CAP_SYS_TIME
        rc = int(self._adjtimex(ctypes.byref(tx)))
        if rc < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"adjtimex: {os.strerror(err)}")
        return state_from_timex(rc, tx)


class StaticReader:
    """A fixed (or test-mutable) state: ``reader.state = ...`` changes what the next read sees."""

    __slots__ = ("error", "reads", "state")

    def __init__(self, state: KernelClockState) -> None:
        self.state = state
        self.error: OSError | None = None
        self.reads = 0

    def read(self) -> KernelClockState:
        self.reads += 1
        if self.error is not None:
            raise self.error
        return self.state


# Handy canned states (tests, docs, `wattd clock` self-checks).
SYNCED_CHRONY = KernelClockState(TIME_OK, STA_PLL | STA_NANO, maxerror_us=8_000, esterror_us=150)
UNSYNCED = KernelClockState(TIME_ERROR, STA_UNSYNC, maxerror_us=NTP_PHASE_LIMIT_US,
                            esterror_us=NTP_PHASE_LIMIT_US)
SYNCED_TIMESYNCD = KernelClockState(TIME_OK, STA_PLL | STA_NANO, maxerror_us=300_000,
                                    esterror_us=0)
CHRONY_NO_RTCSYNC = KernelClockState(TIME_ERROR, STA_PLL | STA_UNSYNC | STA_NANO,
                                     maxerror_us=9_000, esterror_us=200)
