"""BL0940: 35-byte polled answer (SPEC 1.2).

    0 header 0x55 | 1 I_FAST_RMS | 4 I_RMS | 7 reserved | 10 V_RMS | 13 reserved |
    16 WATT (signed) | 19 reserved | 22 CF_CNT | 25 reserved | 28 TPS1 | 31 TPS2 | 34 checksum

All multi-byte fields little-endian. Poll: ``0x50`` then ``0xAA`` (the
English datasheet says 0x58; the chips in the field answer 0x50, as ESPHome
and Tasmota use). Defaults: Tasmota's references (V 33000, I 275000,
P 1430) and ESPHome's legacy energy reference 3.6e6 / 297 counts per kWh.
"""

from __future__ import annotations

from typing import ClassVar

from wattd.protocols.bl09xx import BL09xxDecoder, Layout, References


class BL0940Decoder(BL09xxDecoder):
    DRIVER: ClassVar[str] = "bl0940"
    LAYOUT: ClassVar[Layout] = Layout(frame_len=35, i_rms=4, v_rms=10, watt=16, cf_cnt=22,
                                      freq_period=None)
    DEFAULT_REFERENCES: ClassVar[References] = References(
        voltage=33000.0, current=275000.0, power=1430.0, energy=3.6e6 / 297)
    READ_COMMAND: ClassVar[int] = 0x50
