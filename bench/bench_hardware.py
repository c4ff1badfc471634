"""Throughput of the issue-8 pure cores on one core, side by side with references:

- BL0942 decoder (23-byte answers, chunks of 50) vs the HLW8032 decoder on the same
  number of frames in the same run (reference: the project's streamed-chip decoder);
- wattd identify on a 60 s capture (all drivers and BL0942 addresses);
- pulse core (edges/s through PulsePower.pulse) vs a bare list append (reference).

A real chip sends at most ~10 answers/s and a CF pin a few hundred edges/s.
Prints one JSON object.
"""

from __future__ import annotations

import json
import platform
import time

from wattd.protocols.bl09xx import encode_answer
from wattd.protocols.bl0942 import BL0942Decoder
from wattd.protocols.hlw8032 import HLW8032Decoder
from wattd.protocols.identify import identify
from wattd.protocols.pulse import PulsePower
from wattd.simulator.chip_hlw8032 import ChipModel
from wattd.simulator.power_profile import ConstantPower

FRAMES = 20_000
CHUNK = 50
REPEATS = 3
EDGES = 200_000


def best_of(fn: object) -> float:
    assert callable(fn)
    best = float("inf")
    for _ in range(REPEATS):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    ref = BL0942Decoder()
    bl = b"".join(encode_answer(ref, voltage_v=230.0, current_a=0.4 + i % 7 * 0.01,
                                power_w=90.0, cf_cnt=i) for i in range(FRAMES))
    chip = ChipModel(ConstantPower(100.0), seed=1)
    hlw = b"".join(chip.frame_at(i * 0.104) for i in range(FRAMES))

    def run_bl() -> None:
        d = BL0942Decoder()
        step = 23 * CHUNK
        for off in range(0, len(bl), step):
            d.feed(bl[off:off + step], off * 2_083_333)
        assert d.counters.frames_ok == FRAMES

    def run_hlw() -> None:
        d = HLW8032Decoder("cse7766")
        step = 24 * CHUNK
        for off in range(0, len(hlw), step):
            d.feed(hlw[off:off + step], off * 2_291_666)
        assert d.counters.frames_ok == FRAMES

    capture = [(i * 104_000_000, chip.frame_at(FRAMES * 0.104 + i * 0.104)) for i in range(577)]

    def run_identify() -> None:
        assert identify(capture)[0].driver == "cse7766"

    def run_pulse() -> None:
        core = PulsePower(1.0, debounce_ns=1000)
        for i in range(EDGES):
            core.pulse(i * 10_000_000)

    def run_append() -> None:
        edges: list[int] = []
        for i in range(EDGES):
            edges.append(i * 10_000_000)

    t_bl, t_hlw = best_of(run_bl), best_of(run_hlw)
    t_id = best_of(run_identify)
    t_pulse, t_append = best_of(run_pulse), best_of(run_append)
    print(json.dumps({
        "python": platform.python_version(),
        "bl0942_frames_per_s": round(FRAMES / t_bl),
        "reference_hlw8032_frames_per_s": round(FRAMES / t_hlw),
        "identify_60s_capture_ms": round(t_id * 1000, 1),
        "pulse_edges_per_s": round(EDGES / t_pulse),
        "reference_list_append_per_s": round(EDGES / t_append),
    }))


if __name__ == "__main__":
    main()
