"""BL0942: 23-byte polled answer (SPEC 1.2).

    0 header 0x55 | 1 I_RMS | 4 V_RMS | 7 I_FAST_RMS | 10 WATT (signed) |
    13 CF_CNT | 16 frequency period (16 bit, us) | 18 status/reserved (4) | 22 checksum

All multi-byte fields little-endian. Poll: ``0x58 | address`` then ``0xAA``.
Defaults are ESPHome's references (V 15873.36, I 251213.46, P 596,
3304.61 CF counts per kWh). 4800 8N1 unless the chip was switched to
9600/19200/38400 (config ``baudrate``).
"""

from __future__ import annotations

from typing import ClassVar

from wattd.protocols.bl09xx import BL09xxDecoder, Layout, References


class BL0942Decoder(BL09xxDecoder):
    DRIVER: ClassVar[str] = "bl0942"
    LAYOUT: ClassVar[Layout] = Layout(frame_len=23, i_rms=1, v_rms=4, watt=10, cf_cnt=13,
                                      freq_period=16)
    DEFAULT_REFERENCES: ClassVar[References] = References(
        voltage=15873.36, current=251213.46, power=596.0, energy=3304.61)
    READ_COMMAND: ClassVar[int] = 0x58
    ADDRESSABLE: ClassVar[bool] = True
