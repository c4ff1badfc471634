"""Optional front panel on a Pi (config ``gpio:``): a status LED and a run button.

- ``status_led_pin``: lit while any run is open (polled from the marker
  engine every ``refresh_s``).
- ``button_pin`` (to GND, internal pull-up): a press starts a manual run
  named ``manual-YYYYmmddTHHMMSS``; the next press stops it. The start and
  stop go out as ordinary UDP markers to the daemon's own marker port (with
  the secret when one is configured), so they are journaled, authenticated,
  answered and refused (``busy`` while a benchmark's run is open) exactly
  like markers from any other host: the panel is just another client.

Pins that cannot be claimed are a counted, logged error: the daemon runs on
without the panel. gpiozero's default pin factory on a Pi; tests use
``gpiozero.pins.mock.MockFactory``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from wattd.config import GpioConfig, MarkersConfig
from wattd.logsetup import get_logger

log = get_logger("wattd.gpio")

# (verb, name) -> (ok, reply text); raises nothing
MarkerSender = Callable[[str, str], Awaitable[tuple[bool, str]]]


def udp_sender(markers_cfg: MarkersConfig, *, timeout_s: float = 8.0) -> MarkerSender:
    """Send markers to the daemon's own first listen address (0.0.0.0/:: -> loopback)."""
    from wattd.config import parse_listen

    host, port = parse_listen(markers_cfg.listen[0])
    if host in ("0.0.0.0", ""):  # noqa: S104 - mapping "all interfaces" to loopback
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    async def send(verb: str, name: str) -> tuple[bool, str]:
        def exchange() -> tuple[bool, str]:
            from wattd.errors import WattdError
            from wattd.markers.client import send_marker

            try:
                secret = markers_cfg.secret
                reply = send_marker(verb, name, to=target, secret=secret, timeout_s=timeout_s)
            except (WattdError, OSError) as exc:
                return False, str(exc)
            return reply.ok, str(reply)

        return await asyncio.to_thread(exchange)

    return send


class GpioPanel:
    """A daemon component: ``start`` runs the panel in a task made by ``spawn``."""

    def __init__(self, cfg: GpioConfig, *, runs_open: Callable[[], list[str]],
                 send: MarkerSender,
                 spawn: Callable[[str, Coroutine[object, object, None]], asyncio.Task[None]],
                 pin_factory: object | None = None, refresh_s: float = 0.25,
                 retry_s: float = 10.0) -> None:
        self.cfg = cfg
        self.runs_open = runs_open
        self.send = send
        self._spawn = spawn
        self._task: asyncio.Task[None] | None = None
        self.pin_factory = pin_factory
        self.refresh_s = refresh_s
        self.retry_s = retry_s
        self.errors: Counter[str] = Counter()
        self.presses = 0
        self.manual_run: str | None = None
        self.last_reply = ""
        self._led: Any = None  # gpiozero devices (the library is untyped)
        self._button: Any = None
        self._opened = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pressed: asyncio.Queue[float] = asyncio.Queue()
        self._busy = False
        self._stop = asyncio.Event()

    def open(self) -> bool:
        if self._opened:
            return True
        from gpiozero import LED, Button

        kw = {} if self.pin_factory is None else {"pin_factory": self.pin_factory}
        try:
            if self.cfg.status_led_pin is not None:
                self._led = LED(self.cfg.status_led_pin, **kw)
            if self.cfg.button_pin is not None:
                self._button = Button(self.cfg.button_pin, pull_up=True, bounce_time=0.05,
                                      **kw)
                self._button.when_pressed = self._on_press
        except Exception as exc:  # noqa: BLE001 - any GPIO failure is a counted panel error
            self.close()
            self.errors["pin_error"] += 1
            log.error("gpio_panel_pin_error", error=f"{type(exc).__name__}: {exc}",
                      retry_s=self.retry_s)
            return False
        self._opened = True
        return True

    def close(self) -> None:
        for device in (self._led, self._button):
            if device is not None:
                with contextlib.suppress(Exception):
                    device.close()
        self._led = self._button = None
        self._opened = False

    def _on_press(self) -> None:  # gpiozero's thread (or the caller's, with MockFactory)
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._pressed.put_nowait, time.monotonic())

    def refresh_led(self) -> bool:
        try:
            lit = bool(self.runs_open())
        except Exception:
            self.errors["status"] += 1
            log.exception("gpio_panel_status_failed")
            return False
        if self._led is not None:
            self._led.value = lit
        return lit

    async def handle_press(self) -> None:
        """Start a manual run, or stop the one this panel started."""
        self.presses += 1
        if self._busy:
            self.errors["press_while_busy"] += 1
            return
        self._busy = True
        try:
            if self.manual_run is not None and self.manual_run in self.runs_open():
                ok, reply = await self.send("stop", self.manual_run)
                if ok:
                    self.manual_run = None
            else:
                name = time.strftime("manual-%Y%m%dT%H%M%S")
                ok, reply = await self.send("start", name)
                if ok:
                    self.manual_run = name
            self.last_reply = reply
            if not ok:
                self.errors["refused"] += 1
                log.warning("gpio_panel_marker_refused", reply=reply)
            else:
                log.info("gpio_panel_marker", reply=reply)
        finally:
            self._busy = False
        self.refresh_led()

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop.clear()
        try:
            while not self._stop.is_set():
                if not self.open():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stop.wait(), self.retry_s)
                    continue
                self.refresh_led()
                try:
                    await asyncio.wait_for(self._pressed.get(), self.refresh_s)
                except TimeoutError:
                    continue
                await self.handle_press()
        finally:
            self.close()

    async def start(self) -> None:
        self._task = self._spawn("gpio-panel", self.run())

    async def stop(self) -> None:
        """End the panel's loop; a press being answered is not waited for."""
        self._stop.set()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def status(self) -> dict[str, object]:
        return {"open": self._opened, "presses": self.presses, "manual_run": self.manual_run,
                "errors": dict(self.errors), "last_reply": self.last_reply or None}

