"""wattd identify: captures of each driver (simulated chips, published frames, garbage)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from wattd.cli.main import main
from wattd.protocols.identify import identify
from wattd.simulator.chip_bl09xx import PolledChipModel
from wattd.simulator.chip_hlw8032 import ChipModel
from wattd.simulator.power_profile import ConstantPower
from wattd.sources.capture_file import capture_line

NS = 1_000_000_000
HLW_FAMILY = {"hlw8032", "cse7766", "gb202"}  # the same frame, told apart by the values
# Published BL0942 answers (ESPHome issue #10136 uart_debug log, stray bytes included).
ESPHOME_10136 = [
    "00 E0 00 55 00 00 00 65 BC 34 FB 29 01 00 00 00 00 00 00 36 4E 00 22 01 00 31",
    "00 00 00 55 25 00 00 33 BC 34 4E 2B 01 03 00 00 00 00 00 36 4E 00 22 01 00 E6",
    "00 F0 00 55 00 00 00 6E C5 34 C6 29 01 00 00 00 00 00 00 2E 4E 00 22 01 00 5C",
    "00 F8 00 C0 00 55 00 00 00 A1 C5 34 B4 28 01 00 00 00 00 00 00 2E 4E 00 22 01 00 3C",
    "00 F0 01 E8 00 55 00 00 00 58 BF 34 5A 2A 01 00 00 00 00 00 00 36 4E 00 22 01 00 DB",
    "00 F0 00 00 00 55 00 00 00 8A BA 34 5E 28 01 00 00 00 00 00 00 2E 4E 00 22 01 00 B4",
]
# Published CSE7766 frames, 105 ms apart: arendst/Tasmota issue #11389 "DMP:" lines
# https://github.com/arendst/Tasmota/issues/11389
TASMOTA_11389 = [
    "55 5A 02 FB 48 00 03 2B 00 40 4C 00 1F BB 52 65 C0 00 32 52 71 02 3D 84",
    "55 5A 02 FB 48 00 03 2B 00 40 4C 00 1F BB 52 65 C0 00 32 5D 71 02 45 97",
    "55 5A 02 FB 48 00 03 2B 00 40 4C 00 1F BB 52 65 C0 00 32 5D 71 02 4D 9F",
]
# Published BL0940 answers quoted in Tasmota's xnrg_14_bl09xx.ino (Bl09XXDecode3940).
TASMOTA_BL0940 = [
    "55 F2 03 00 00 00 00 7E 02 00 D4 B0 72 AC 01 00 00 00 00 02 01 00 00 00 00 00 00 00 BA"
    " 01 00 FE 03 00 83",
    "55 88 02 00 49 00 00 FE 02 00 AF EF 71 D2 01 00 EB FF FF 49 01 00 00 00 00 02 00 00 CF"
    " 01 00 FE 03 00 9F",
    "55 B9 33 00 DE 45 00 94 02 00 CF E4 70 63 02 00 6C 4C 00 13 01 00 09 00 00 00 00 00 E4"
    " 01 00 FE 03 00 72",
    "55 B8 55 00 2F 73 00 D2 02 00 00 C6 74 F9 01 00 97 89 00 37 01 00 AB 00 00 2D 00 00 02"
    " 02 00 FE 03 00 6E",
]


def published(frames: list[str], period_ns: int) -> list[tuple[int, bytes]]:
    return [(i * period_ns, bytes.fromhex(x)) for i, x in enumerate(frames)]


def streamed(kv: float, n: int = 40, power_w: float = 60.0) -> list[tuple[int, bytes]]:
    chip = ChipModel(ConstantPower(power_w), kv=kv, ki=1.0, seed=4)
    return [(int(i * 0.104 * NS), chip.frame_at(i * 0.104)) for i in range(n)]


def polled(driver: str, address: int = 0, n: int = 20) -> list[tuple[int, bytes]]:
    chip = PolledChipModel(driver, ConstantPower(60.0), address=address, seed=4)
    request = chip.codec.poll_request()
    return [(i * NS // 4, b"".join(chip.receive(request, i / 4))) for i in range(n)]


def with_garbage(reads: list[tuple[int, bytes]], seed: int = 0) -> list[tuple[int, bytes]]:
    rng = random.Random(seed)
    return [(t, bytes(rng.randrange(256) for _ in range(rng.randrange(4))) + data)
            for t, data in reads]


@pytest.mark.parametrize(("reads", "best", "settings"), [
    (streamed(kv=1.0), "cse7766", {}),
    (streamed(kv=1.88), "hlw8032", {}),
    (polled("bl0942", address=2), "bl0942", {"address": 2}),
    (polled("bl0940"), "bl0940", {}),
    (published(ESPHOME_10136, 5 * NS), "bl0942", {"address": 0}),
    (published(TASMOTA_BL0940, NS), "bl0940", {}),
    (published(TASMOTA_11389, 105_000_000), "cse7766", {}),
])
def test_identify_each_driver(reads: list[tuple[int, bytes]], best: str,
                              settings: dict[str, int]) -> None:
    for capture in (reads, with_garbage(reads)):
        ranked = identify(capture)
        assert ranked[0].driver == best
        assert ranked[0].settings == settings
        assert ranked[0].decodes
        assert ranked[0].checksum_hit_rate > 0.9
        assert ranked[0].plausible_rate == 1.0
        assert {c.driver for c in ranked} == {"bl0940", "bl0942", "cse7766", "gb202", "hlw8032",
                                          "mcp39f511n", "um"}
        family = HLW_FAMILY if best in HLW_FAMILY else {"bl0940", "bl0942"}
        wrong_family = [c for c in ranked if c.driver not in family]
        assert not any(c.decodes for c in wrong_family)


def test_cse7766_frames_make_an_hlw8032_read_implausible_voltage() -> None:
    ranked = {c.driver: c for c in identify(streamed(kv=1.0))}
    assert ranked["cse7766"].median_voltage_v == pytest.approx(230, abs=2)
    assert ranked["hlw8032"].plausible_rate == 0.0  # 432 V
    assert ranked["hlw8032"].checksum_hit_rate == 1.0


def test_random_bytes_decode_as_nothing() -> None:
    rng = random.Random(7)
    reads = [(i * NS, bytes(rng.randrange(256) for _ in range(64))) for i in range(100)]
    assert not any(c.decodes for c in identify(reads))


def write_capture(path: Path, reads: list[tuple[int, bytes]]) -> None:
    path.write_text("".join(capture_line(t, data) for t, data in reads))


def test_cli_identify_table_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capture = tmp_path / "plug.jsonl"
    write_capture(capture, with_garbage(polled("bl0942", address=1)))
    assert main(["identify", str(capture)]) == 0
    out = capsys.readouterr().out
    assert "best: bl0942 address=1" in out
    assert "100.0%" in out
    assert main(["identify", str(capture), "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["best"] == "bl0942"
    assert report["candidates"][0]["settings"] == {"address": 1}


def test_cli_identify_raw_file_and_failures(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    raw = tmp_path / "plug.bin"
    raw.write_bytes(b"".join(data for _, data in streamed(kv=1.88)))
    assert main(["identify", str(raw)]) == 0
    out = capsys.readouterr().out
    assert "best: hlw8032 (equally: cse7766, gb202)" in out
    assert "only the voltage tells them apart" in out
    noise = tmp_path / "noise.bin"
    noise.write_bytes(bytes(random.Random(1).randrange(256) for _ in range(3000)))
    assert main(["identify", str(noise)]) == 1
    assert "no driver decodes" in capsys.readouterr().out
    assert main(["identify", str(tmp_path / "missing.bin")]) == 1
