"""A serial meter: pyserial's fd in ``loop.add_reader`` (or a reader thread), no polling loop.

Bytes are read the moment the kernel has them (non-blocking ``os.read`` on the
port's fd), stamped right then on both clocks, fed to the pure decoder (at
once, or in the pipeline's next cycle for a source whose reads a thread keeps:
wattd.sources.frame_backlog), and
each decoded measurement becomes a ``Reading`` stamped per SPEC 7: arrival of
the frame's last byte - the frame's wire time - the adapter's ``latency_ms``.
The port is reopened with backoff when it vanishes; nothing here raises out
of ``run()`` except cancellation.
"""

from __future__ import annotations

import asyncio
import os
import termios
import time
from collections.abc import Callable, Mapping
from typing import Any

import serial
import structlog

from wattd.clock.timesource import SYSTEM_CLOCK, Clock, clock_pair
from wattd.protocols.base import DecodeError, Decoder, Measurement, SerialSettings
from wattd.protocols.registry import DriverSpec
from wattd.readings import Reading
from wattd.sources.frame_backlog import Deferral, FrameBacklog
from wattd.sources.port_reads import READ_BYTES, gone_reason
from wattd.sources.reconnect import Reconnector
from wattd.sources.serial_open import open_serial

ERROR_LOG_INTERVAL_S = 10.0  # identical decode-error log lines: at most one per interval


class SerialSource:
    """One serial meter. ``await run()`` until ``stop()``; ``status()`` for ``wattd status``.

    ``vmin_wakeups=False`` keeps one wake-up per chunk with the sleep-through-frame
    timer, what a port that refuses termios VMIN gets (see ``_setup_vmin``). With
    ``deferral`` whole frames wait for the pipeline's cycle (wattd.sources.frame_backlog)."""

    def __init__(self, name: str, port: str, driver: DriverSpec, decoder: Decoder, *,
                 on_reading: Callable[[Reading], None],
                 on_error: Callable[[DecodeError], None] | None = None,
                 settings: SerialSettings | None = None, latency_ms: float = 0.0,
                 clock: Clock = SYSTEM_CLOCK, static_tags: Mapping[str, str] | None = None,
                 poll_interval_s: float | None = None, vmin_wakeups: bool = True,
                 reconnector: Reconnector | None = None, log: Any = None,
                 deferral: Deferral | None = None) -> None:
        self.name = name
        self.port = port
        self.driver = driver
        self.decoder = decoder
        self.settings = settings or driver.serial
        self.latency_ns = round(latency_ms * 1e6)
        # Frame size -> wire time + adapter latency: what a stamp is moved back by.
        self._lead_ns: dict[int, int] = {}
        self.clock = clock
        self.static_tags = dict(static_tags or {})
        self.poll_interval_s = poll_interval_s
        self._on_reading = on_reading
        self._on_error = on_error
        self._log = log or structlog.get_logger("wattd.sources")
        self.reconnector = reconnector or Reconnector(name, log=self._log)
        self.bytes_read = 0
        self.readings = 0
        self.handler_errors = 0
        self.answers = 0  # decoded frames, good or bad (a polled chip that answered)
        self.no_answer = 0  # polls with no answer before the next poll
        self._last_reading_boot_ns: int | None = None
        self._serial: serial.Serial | None = None
        self._gone: asyncio.Future[str] | None = None
        self._fd: int | None = None
        self._resume: asyncio.TimerHandle | None = None
        self._byte_s = self.settings.wire_time_ns(1) / 1e9
        self.reads = 0
        self.reader_pauses = 0  # frames slept through (reader off until the last byte is due)
        self.vmin_wakeups = vmin_wakeups
        # termios VMIN wake-ups (see _setup_vmin): the frame size while the mode is on
        # for the open port, else None; the VMIN now programmed; tcsetattr calls made.
        self._vmin_frame: int | None = None
        self._vmin = 0
        self.vmin_sets = 0
        self._pending_fn: Callable[[], int] | None = getattr(decoder, "bytes_pending", None)
        takes_whole = getattr(decoder, "takes_whole", None)
        self.backlog = (FrameBacklog(self.feed, takes_whole, deferral,
                                     after_catch_up=self._after_catch_up, name=name)
                        if deferral is not None and takes_whole is not None else None)
        self._error_log_last: dict[str, float] = {}
        self._error_log_suppressed: dict[str, int] = {}

    # ------------------------------------------------------------------ lifecycle
    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        rc = self.reconnector
        while not rc.stopped:
            try:
                port = self._open()
            except (serial.SerialException, OSError, ValueError, termios.error) as exc:
                # termios.error: a real UART that refuses the line settings is a port
                # that cannot be opened, not a crash (a pty gets what it accepts)
                rc.failed(str(exc))
                if not await rc.wait():
                    break
                continue
            self._serial = port
            self._gone = loop.create_future()
            fd = port.fileno()
            self._fd = fd
            self._setup_vmin(fd)
            # VMIN at the frame size: a thread reads whole frames for the pipeline's
            # cycle (the event loop is not woken per frame); else the loop reads.
            backlog = self.backlog if self._vmin_frame is not None else None
            if backlog is not None:
                backlog.start(fd, self.clock, self._port_gone)
            else:
                loop.add_reader(fd, self._on_readable, fd)
            rc.connected()
            poller = loop.create_task(self._poll(fd)) if self._polled() else None
            try:
                reason = await self._gone
            finally:
                self._fd = None
                if self._resume is not None:
                    self._resume.cancel()
                    self._resume = None
                if backlog is not None:
                    backlog.stop()
                else:
                    loop.remove_reader(fd)
                if poller is not None:
                    poller.cancel()
                self._close()
            if rc.stopped:
                break
            rc.lost(reason)
            if not await rc.wait():
                break
        self._close()

    def stop(self) -> None:
        self.reconnector.stop()
        if self._gone is not None and not self._gone.done():
            self._gone.set_result("stopped")

    def _open(self) -> serial.Serial:
        port, refused = open_serial(self.port, self.settings)
        if refused:  # a pty (socat, ser2net, simulator): it has no wire to keep them on
            self._log.warning("pseudo-terminal refused line settings; opened without them",
                              meter=self.name, port=self.port, refused=refused)
        try:
            port.set_low_latency_mode(True)
        except (OSError, ValueError, AttributeError, NotImplementedError) as exc:
            self._log.debug("low-latency mode unavailable", meter=self.name, reason=str(exc))
        return port

    def _close(self) -> None:
        port, self._serial = self._serial, None
        if port is not None:
            try:
                port.close()
            except (OSError, serial.SerialException) as exc:
                self._log.debug("closing meter port failed", meter=self.name, reason=str(exc))
        if self.backlog is not None:
            self.backlog.catch_up()  # what was read before the port went
        flush = getattr(self.decoder, "flush", None)
        if flush is not None:  # a frame cut by the unplug is `incomplete`
            self._dispatch(flush(self.clock.realtime_ns()), 0, 0)

    # ------------------------------------------------------------------ reading
    def _on_readable(self, fd: int) -> None:
        try:
            data = os.read(fd, READ_BYTES)
            real_ns, boot_ns = clock_pair(self.clock)
        except BlockingIOError:
            return
        except OSError as exc:
            self._port_gone(gone_reason(exc))
            return
        if not data:
            self._port_gone("end of file")
            return
        self.feed(data, real_ns, boot_ns)
        if self._vmin_frame is not None:
            self._realign_vmin(fd)
        else:
            self._sleep_through_frame(fd, len(data))

    def feed(self, data: bytes, real_ns: int, boot_ns: int) -> None:
        """Bytes read from the meter at ``real_ns`` / ``boot_ns`` (the one clock
        pair of the read): decoded, stamped and passed on as readings. The port
        reader's path; also how in-process feeds (``--unpaced``) inject bytes."""
        self.bytes_read += len(data)
        self.reads += 1
        events = self.decoder.feed(data, real_ns)
        if events:
            self.answers += len(events)
            self._dispatch(events, real_ns, boot_ns)

    def _after_catch_up(self) -> None:
        """After the kept reads were fed: realign VMIN as after a read (the thread's
        poll is woken by the tcsetattr and waits for the new VMIN)."""
        if self._fd is not None and self._vmin_frame is not None:
            self._realign_vmin(self._fd)

    def _setup_vmin(self, fd: int) -> None:
        """Have the kernel wake us once per frame, when its last byte arrives: the
        tty's VMIN set to the frame size with VTIME 0 (n_tty's poll then reports the
        fd readable only once VMIN bytes are buffered; with VTIME > 0 it would on any
        byte). Needs a decoder that says how much of a frame is missing
        (``bytes_pending``), so that a stream out of step is realigned (see
        ``_realign_vmin``). A port that refuses it keeps one wake-up per chunk and
        the sleep-through-frame timer instead. Hang-up and I/O errors (unplug) wake
        the reader whatever VMIN is."""
        self._vmin_frame = None
        self._vmin = 0
        frame = self.driver.frame_bytes
        if frame < 2 or self._pending_fn is None or not self.vmin_wakeups:
            return
        if self._set_vmin(fd, frame):
            self._vmin_frame = frame

    def _set_vmin(self, fd: int, vmin: int, *, log: bool = True) -> bool:
        try:
            attrs = termios.tcgetattr(fd)
            cc = attrs[6]
            cc[termios.VMIN] = vmin
            cc[termios.VTIME] = 0
            termios.tcsetattr(fd, termios.TCSANOW, attrs)
        except (termios.error, OSError, ValueError) as exc:
            if log:
                self._log.debug("tty VMIN not settable: a wake-up per chunk", meter=self.name,
                                vmin=vmin, reason=str(exc))
            self._vmin_frame = None
            return False
        self._vmin = vmin
        self.vmin_sets += 1
        return True

    def _realign_vmin(self, fd: int) -> None:
        """In step with the stream, VMIN stays the frame size: no tcsetattr per
        frame. Only when a read leaves a partial frame in the decoder (stream out of
        step: start-up, garbage, a lost byte) is VMIN set to exactly the bytes that
        frame still misses, so its last byte is read on arrival (the stamp keeps its
        precision), and back to the frame size after the next read."""
        frame, pending_fn = self._vmin_frame, self._pending_fn
        assert frame is not None
        assert pending_fn is not None
        pending = pending_fn()
        want = pending if 0 < pending < frame else frame
        if want != self._vmin and not self._set_vmin(fd, want):
            # best effort: never leave a frame-size VMIN behind (then: as without VMIN)
            self._set_vmin(fd, 1, log=False)
            self._vmin_frame = None

    def _sleep_through_frame(self, fd: int, got: int) -> None:
        """While a frame is under way, stop watching the port until all but its
        last byte are due: a low-latency USB adapter otherwise wakes us for
        every byte. The last byte is still read the moment it arrives, so the
        stamp (taken at the last byte) keeps its precision.

        Sleeping costs a reader removal, a timer and a reader re-add (about two
        reads' worth of event-loop work), so it is done only when more than two
        reads of the size just seen (the adapter's chunk) are still to come."""
        if self._pending_fn is None:
            return
        pending = self._pending_fn()
        if pending < 3 or pending <= 2 * got:
            return
        loop = asyncio.get_running_loop()
        loop.remove_reader(fd)
        self.reader_pauses += 1
        self._resume = loop.call_later((pending - 1) * self._byte_s, self._resume_reading, fd)

    def _resume_reading(self, fd: int) -> None:
        self._resume = None
        if self._fd == fd:
            asyncio.get_running_loop().add_reader(fd, self._on_readable, fd)

    def _port_gone(self, reason: str) -> None:
        if self._gone is not None and not self._gone.done():
            self._gone.set_result(reason)

    def _dispatch(self, events: list[DecodeError | Measurement], real_ns: int,
                  boot_ns: int) -> None:
        offset_ns = boot_ns - real_ns  # the read moment on both clocks
        for event in events:
            try:
                if isinstance(event, Measurement):
                    self._emit(event, offset_ns)
                else:
                    self._error(event)
            except Exception as exc:  # noqa: BLE001 - a handler bug must not kill the port
                self.handler_errors += 1
                self._log.error("reading handler failed", meter=self.name, error=repr(exc))

    def _emit(self, m: Measurement, offset_ns: int) -> None:
        lead_ns = self._lead_ns.get(m.frame_bytes)
        if lead_ns is None:
            lead_ns = self._lead_ns[m.frame_bytes] = (
                self.settings.wire_time_ns(m.frame_bytes) + self.latency_ns)
        t_ns = m.t_ns - lead_ns
        # Positional, in Reading's field order (meter, t_ns, t_boot_ns, power_w,
        # voltage_v, current_a, apparent_va, power_factor, energy_j, status,
        # clock_synced, tags): keywords cost more than the rest of this method.
        # clock_synced is the clock gate's to set, when the reading enters the pipeline.
        reading = Reading(self.name, t_ns, t_ns + offset_ns, m.power_w, m.voltage_v,
                          m.current_a, m.apparent_va, m.power_factor, m.energy_j, m.status,
                          True, dict(self.static_tags))
        self.readings += 1
        self._last_reading_boot_ns = reading.t_boot_ns
        self._on_reading(reading)

    def _error(self, error: DecodeError) -> None:
        now = time.monotonic()
        last = self._error_log_last.get(error.reason)
        if last is None or now - last >= ERROR_LOG_INTERVAL_S:
            suppressed = self._error_log_suppressed.pop(error.reason, 0)
            self._error_log_last[error.reason] = now
            self._log.warning("meter input dropped", meter=self.name, reason=error.reason,
                              detail=error.detail, suppressed_since_last=suppressed)
        else:
            self._error_log_suppressed[error.reason] = \
                self._error_log_suppressed.get(error.reason, 0) + 1
        if self._on_error is not None:
            self._on_error(error)

    # ------------------------------------------------------------------ polled chips
    def _polled(self) -> bool:
        return self.driver.polled and bool(self.poll_interval_s)

    async def _poll(self, fd: int) -> None:
        """Write the decoder's request every ``poll_interval_s`` (BL09xx chips), on a
        steady cadence. A poll answered by nothing (no frame, good or bad) before the
        next poll is counted as ``no_answer`` and logged (rate-limited); polling goes
        on regardless, so a silent or wedged chip never stalls the source."""
        assert self.poll_interval_s
        # Never ask faster than a request and its answer fit on the wire (+50 %):
        # a BL0940 answer alone takes 73 ms at 4800 baud.
        answer_s = self.settings.wire_time_ns(self.driver.frame_bytes + 2) / 1e9
        interval = max(self.poll_interval_s, 1.5 * answer_s)
        loop = asyncio.get_running_loop()
        next_t = loop.time()
        answers_at_poll: int | None = None
        while True:
            if answers_at_poll is not None and self.answers == answers_at_poll:
                self.no_answer += 1
                self.decoder.counters.dropped["no_answer"] += 1
                self._error(DecodeError("no_answer", f"no answer to the poll within "
                                        f"{interval:g} s", self.clock.realtime_ns()))
            request = self.decoder.poll_request()
            if request:
                try:
                    os.write(fd, request)
                except BlockingIOError:
                    pass
                except OSError as exc:
                    self._port_gone(f"write: {exc}")
                    return
            answers_at_poll = self.answers
            next_t += interval
            now = loop.time()
            if next_t < now:  # we fell behind (suspend, overload): skip, do not burst
                next_t = now + interval
            await asyncio.sleep(next_t - now)

    # ------------------------------------------------------------------ status
    def status(self) -> dict[str, object]:
        c = self.decoder.counters
        age_s = None
        if self._last_reading_boot_ns is not None:
            age_s = round((self.clock.boottime_ns() - self._last_reading_boot_ns) / 1e9, 3)
        return {
            "meter": self.name, "driver": self.driver.name, "port": self.port,
            "state": self.reconnector.state.value, "frames_ok": c.frames_ok,
            "frames_bad": sum(c.dropped.values()), "dropped": dict(sorted(c.dropped.items())),
            "skipped_bytes": c.skipped_bytes, "bytes_read": self.bytes_read, "reads": self.reads,
            "readings": self.readings, "reconnects": self.reconnector.reconnects,
            **({"no_answer": self.no_answer} if self._polled() else {}),
            "last_error": self.reconnector.last_error or None,
            "last_reading_age_s": age_s,
        }
