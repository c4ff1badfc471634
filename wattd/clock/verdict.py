"""The pure verdict on a kernel clock snapshot: synchronised or not, and why.

See ``wattd/clock/health.py`` for the reasoning and the NTP daemon caveats.
Kept apart so ``wattd clock`` imports no asyncio.
"""

from __future__ import annotations

from dataclasses import dataclass

from wattd.clock.adjtimex import KernelClockState

DEFAULT_MAX_ERROR_MS = 100.0

CAVEATS = (
    "chrony clears the kernel's unsynchronised flag only with 'rtcsync' in chrony.conf "
    "(Debian's default has it); without it wattd trusts the kernel's maximum error instead.",
    "systemd-timesyncd gives the kernel no error estimate (it writes maxerror=esterror=0): "
    "the clock is then 'synchronised, error unknown' and max_error_ms cannot be checked.",
)


@dataclass(slots=True, frozen=True)
class Assessment:
    synced: bool
    basis: str  # kernel_flag | error_bound | no_estimate | unsynchronised | error_too_large |
    #             adjtimex_failed
    reason: str  # one human sentence
    error_known: bool
    maxerror_ms: float | None


def assess(state: KernelClockState | None, max_error_ms: float,
           read_error: str = "") -> Assessment:
    """Pure verdict on one kernel snapshot (see module docstring)."""
    if state is None:
        return Assessment(False, "adjtimex_failed",
                          f"kernel clock state unreadable: {read_error or 'unknown error'}",
                          False, None)
    maxerror_ms = state.maxerror_us / 1000
    if state.error_estimate_known:
        if maxerror_ms > max_error_ms:
            return Assessment(False, "error_too_large",
                              f"maximum error {maxerror_ms:.3f} ms exceeds "
                              f"max_error_ms {max_error_ms:g}", True, maxerror_ms)
        if state.unsync_flag:
            return Assessment(True, "error_bound",
                              f"kernel flag says unsynchronised but an NTP daemon keeps the "
                              f"error bound at {maxerror_ms:.3f} ms (chrony without rtcsync?)",
                              True, maxerror_ms)
        return Assessment(True, "kernel_flag",
                          f"synchronised, maximum error {maxerror_ms:.3f} ms", True, maxerror_ms)
    if not state.unsync_flag:
        return Assessment(True, "no_estimate",
                          "synchronised, error unknown (no estimate from the NTP daemon, "
                          "e.g. systemd-timesyncd)", False, None)
    return Assessment(False, "unsynchronised",
                      "kernel reports the clock unsynchronised (no NTP daemon disciplining it?)",
                      False, None)
