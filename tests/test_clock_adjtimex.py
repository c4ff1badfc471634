"""adjtimex: struct layout against the platform's C header, and a real read-only call."""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import pytest

from wattd.clock import adjtimex as ax

C_PROBE = r"""
#include <stddef.h>
#include <stdio.h>
#include <sys/timex.h>
int main(void) {
    printf("%zu %zu %zu %zu %zu %zu %zu\n", sizeof(struct timex),
           offsetof(struct timex, maxerror), offsetof(struct timex, status),
           offsetof(struct timex, time), offsetof(struct timex, tick),
           offsetof(struct timex, stbcnt), offsetof(struct timex, tai));
    return 0;
}
"""


def _layout() -> list[int]:
    t = ax.Timex
    return [ctypes.sizeof(t), t.maxerror.offset, t.status.offset, t.time.offset, t.tick.offset,
            t.stbcnt.offset, t.tai.offset]


def test_layout_follows_the_platform_long() -> None:
    # hand-computed from <bits/timex.h> for the two ABIs wattd runs on
    if ctypes.sizeof(ctypes.c_long) == 8:  # x86_64, aarch64
        assert _layout() == [208, 24, 40, 72, 88, 152, 160]
    else:  # armv7/armhf (32-bit long): the legacy layout of the plain adjtimex symbol
        assert _layout() == [128, 12, 20, 36, 44, 76, 80]


def test_layout_matches_the_c_header(tmp_path: Path) -> None:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler/headers to compare against")
    if ctypes.sizeof(ctypes.c_long) == 4:
        pytest.skip("32-bit: C code may be built with 64-bit time_t (__adjtimex64 layout)")
    src = tmp_path / "probe.c"
    src.write_text(C_PROBE)
    exe = tmp_path / "probe"
    built = subprocess.run([cc, str(src), "-o", str(exe)], check=False, capture_output=True)
    if built.returncode != 0:
        pytest.skip("C headers missing (libc6-dev)")
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout
    assert [int(x) for x in out.split()] == _layout()


def test_real_kernel_read_is_consistent() -> None:
    state = ax.KernelReader().read()
    assert state.return_code in ax.STATE_NAMES
    assert 0 <= state.maxerror_us <= ax.NTP_PHASE_LIMIT_US
    assert 0 <= state.esterror_us <= ax.NTP_PHASE_LIMIT_US
    # the kernel answers TIME_ERROR whenever STA_UNSYNC is set
    if state.unsync_flag:
        assert state.return_code == ax.TIME_ERROR
    assert state.tick_us > 0  # USER_HZ tick, e.g. 10000 us: proves the fields were filled
    assert ("UNSYNC" in state.flags) == state.unsync_flag


def test_state_from_timex_units() -> None:
    tx = ax.Timex()
    tx.status = ax.STA_PLL | ax.STA_NANO
    tx.offset = -1500  # ns because STA_NANO
    tx.freq = -12 * 65536 - 32768  # -12.5 ppm in scaled ppm
    tx.maxerror, tx.esterror = 4000, 25
    state = ax.state_from_timex(ax.TIME_OK, tx)
    assert state.offset_ns == -1500
    assert state.freq_ppm == -12.5
    assert state.flags == ["PLL", "NANO"]
    assert state.state_name == "TIME_OK"
    assert state.error_estimate_known
    tx.status = ax.STA_PLL  # microseconds now
    assert ax.state_from_timex(ax.TIME_OK, tx).offset_ns == -1_500_000


def test_error_estimate_known_per_daemon() -> None:
    assert ax.SYNCED_CHRONY.error_estimate_known
    assert ax.CHRONY_NO_RTCSYNC.error_estimate_known
    assert not ax.SYNCED_TIMESYNCD.error_estimate_known  # esterror 0
    assert not ax.UNSYNCED.error_estimate_known  # at the 16 s phase limit
    assert ax.KernelClockState(99, 0, 0, 0).state_name == "state_99"


def test_static_reader_raises_injected_error() -> None:
    reader = ax.StaticReader(ax.UNSYNCED)
    reader.error = PermissionError(1, "seccomp")
    with pytest.raises(OSError, match="seccomp"):
        reader.read()
