"""Decode rate of the pure HLW8032/CSE7766 decoder on one core, frames/s.

Prints one JSON object: the decoder's rate side by side with a reference in
the same run (the same frames through a minimal struct.unpack + checksum loop
with no state, no checks and no records), and the target (150 000 frames/s).
"""

from __future__ import annotations

import json
import platform
import struct
import sys
import time

from wattd.protocols.hlw8032 import HLW8032Decoder
from wattd.simulator.chip_hlw8032 import ChipModel
from wattd.simulator.power_profile import ConstantPower

TARGET_FRAMES_PER_S = 150_000
FRAMES = 20_000
CHUNK_FRAMES = 50  # frames per feed() call (a capture file replayed in chunks)
REPEATS = 5


def make_stream() -> bytes:
    chip = ChipModel(ConstantPower(100.0), seed=1)
    return b"".join(chip.frame_at(i * 0.104) for i in range(FRAMES))


def run_decoder(stream: bytes) -> float:
    best = float("inf")
    step = 24 * CHUNK_FRAMES
    for _ in range(REPEATS):
        decoder = HLW8032Decoder("cse7766")
        start = time.perf_counter()
        for off in range(0, len(stream), step):
            decoder.feed(stream[off:off + step], off * 2_291_666)
        best = min(best, time.perf_counter() - start)
        assert decoder.counters.frames_ok == FRAMES, decoder.counters
    return FRAMES / best


def run_reference(stream: bytes) -> float:
    unpack = struct.Struct(">BB" + "BH" * 6 + "BHB").unpack_from
    best = float("inf")
    for _ in range(REPEATS):
        out = []
        start = time.perf_counter()
        for off in range(0, len(stream), 24):
            f = unpack(stream, off)
            if sum(stream[off + 2:off + 23]) & 0xFF == f[16]:
                out.append((f[10] << 16 | f[11]) / (f[12] << 16 | f[13]))
        best = min(best, time.perf_counter() - start)
        assert len(out) == FRAMES
    return FRAMES / best


def main() -> int:
    stream = make_stream()
    decoder_rate = run_decoder(stream)
    reference_rate = run_reference(stream)
    print(json.dumps({
        "bench": "decode_hlw8032",
        "python": platform.python_version(),
        "frames": FRAMES,
        "chunk_frames": CHUNK_FRAMES,
        "decoder_frames_per_s": round(decoder_rate),
        "reference_unpack_loop_frames_per_s": round(reference_rate),
        "decoder_vs_reference": round(decoder_rate / reference_rate, 3),
        "target_frames_per_s": TARGET_FRAMES_PER_S,
        "meets_target": decoder_rate >= TARGET_FRAMES_PER_S,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
