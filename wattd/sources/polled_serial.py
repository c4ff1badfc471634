"""Request/reply over a serial port (MCP39F511N, UM meters): the thin transport.

The port's fd sits in ``loop.add_reader``; each read is stamped on both clocks
the moment it arrives and handed to the poll waiting for it. A poll writes
the core's requests one by one and feeds the reply bytes to the core until it
has what it asked for or the reply timeout passes. A measurement is stamped
at the midpoint of the first request's send and its reply's arrival less the
reply's wire time and the adapter latency (SPEC 8, SPEC 7).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import Any

import serial

from wattd.clock.timesource import Clock, clock_pair
from wattd.protocols.base import DecodeCounters, DecodeError, Measurement, SerialSettings
from wattd.protocols.polled import PolledCore
from wattd.sources.polled_source import MeterPortError, Stamped
from wattd.sources.port_reads import READ_BYTES, gone_reason


class SerialPollTransport:
    def __init__(self, port: str, core: PolledCore, settings: SerialSettings, *,
                 clock: Clock, reply_timeout_s: float, latency_ms: float = 0.0) -> None:
        self.port = port
        self.core = core
        self.settings = settings
        self.clock = clock
        self.reply_timeout_s = reply_timeout_s
        self.latency_ns = round(latency_ms * 1e6)
        self.bytes_read = 0
        self._serial: serial.Serial | None = None
        self._fd: int | None = None
        self._queue: asyncio.Queue[tuple[bytes, int, int] | str] = asyncio.Queue()

    @property
    def counters(self) -> DecodeCounters:
        return self.core.counters

    async def open(self) -> None:
        s = self.settings
        try:
            port = serial.Serial(self.port, baudrate=s.baudrate, bytesize=s.bytesize,
                                 parity=s.parity, stopbits=s.stopbits, timeout=0,
                                 exclusive=True)
        except (serial.SerialException, ValueError) as exc:
            raise MeterPortError(str(exc)) from None
        # a pty or an adapter without low-latency mode: fine, only latency
        with contextlib.suppress(OSError, ValueError, AttributeError, NotImplementedError):
            port.set_low_latency_mode(True)
        self._serial = port
        self._fd = port.fileno()
        self._queue = asyncio.Queue()
        asyncio.get_running_loop().add_reader(self._fd, self._on_readable, self._fd)

    async def close(self) -> None:
        fd, port = self._fd, self._serial
        self._fd = self._serial = None
        if fd is not None:
            asyncio.get_running_loop().remove_reader(fd)
        if port is not None:
            with contextlib.suppress(OSError, serial.SerialException):  # a vanished port
                port.close()

    def _on_readable(self, fd: int) -> None:
        try:
            data = os.read(fd, READ_BYTES)
            real_ns, boot_ns = clock_pair(self.clock)
        except BlockingIOError:
            return
        except OSError as exc:
            self._gone(gone_reason(exc))
            return
        if not data:
            self._gone("end of file")
            return
        self.bytes_read += len(data)
        self._queue.put_nowait((data, real_ns, boot_ns))

    def _gone(self, reason: str) -> None:
        if self._fd is not None:
            asyncio.get_running_loop().remove_reader(self._fd)
            self._fd = None
        self._queue.put_nowait(reason)

    async def poll(self) -> list[Stamped]:
        core, loop = self.core, asyncio.get_running_loop()
        while not self._queue.empty():  # a late reply to an earlier poll: not ours
            item = self._queue.get_nowait()
            if isinstance(item, str):
                raise MeterPortError(item)
            core.counters.skipped_bytes += len(item[0])
        fd = self._fd
        if fd is None:
            raise MeterPortError("port closed")
        core.start_poll()
        out: list[Stamped] = []
        first_send: tuple[int, int] | None = None
        while (request := core.next_request()) is not None:
            send_real, send_boot = clock_pair(self.clock)
            if first_send is None:
                first_send = (send_real, send_boot)
            try:
                os.write(fd, request)
            except OSError as exc:
                raise MeterPortError(f"write: {exc.strerror or exc}") from None
            deadline = loop.time() + self.reply_timeout_s
            while core.reply_pending():
                remaining = deadline - loop.time()
                if remaining <= 0:
                    out += [Stamped(e) for e in core.reply_timeout(self.clock.realtime_ns())]
                    break
                try:
                    item = await asyncio.wait_for(self._queue.get(), remaining)
                except TimeoutError:
                    continue
                if isinstance(item, str):
                    raise MeterPortError(item)
                data, real_ns, _ = item
                for event in core.feed(data, real_ns):
                    out.append(self._stamp(event, first_send))
        return out

    def _stamp(self, event: Measurement | DecodeError, send: tuple[int, int]) -> Stamped:
        if not isinstance(event, Measurement):
            return Stamped(event)
        send_real, send_boot = send
        reply_left_ns = (event.t_ns - self.settings.wire_time_ns(event.frame_bytes)
                         - self.latency_ns)
        t_ns = send_real + max(0, reply_left_ns - send_real) // 2
        return Stamped(event, t_ns, t_ns + (send_boot - send_real))

    def details(self) -> dict[str, Any]:
        model = getattr(self.core, "model", None)
        return {"bytes_read": self.bytes_read, **({"model": model} if model else {})}
