"""The daemon's meters: one source per configured meter, each in its own task.

A meter that fails never stalls the others: each source runs in its own
task, reconnects by itself, and a crash of one source is logged, counted and
the source restarted after a pause. Under ``--simulate`` (and for driver
``simulated``) a simulated chip is served on a pseudo-terminal and the real
serial path reads it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from wattd.backoff import Backoff
from wattd.clock.timesource import Clock
from wattd.config import SERIAL_DRIVERS, MeterConfig
from wattd.config.polled import POLLED_DRIVERS
from wattd.logsetup import get_logger
from wattd.readings import Reading
from wattd.sources.frame_backlog import Deferral

if TYPE_CHECKING:
    from tempfile import TemporaryDirectory

log = get_logger("wattd.meters")

SIMULATED_DEFAULT_POWER_W = 3.5
RESTART_FIRST_S = 2.0  # pause before restarting a crashed source, doubling up to:
RESTART_MAX_S = 30.0


class Source(Protocol):
    async def run(self) -> None: ...

    def stop(self) -> Awaitable[None] | None:
        """Serial sources stop at once, the pulse source awaits its GPIO thread."""

    def status(self) -> dict[str, Any]: ...


class MeterSet:
    def __init__(self, meters: list[MeterConfig], *, clock: Clock,
                 on_reading: Callable[[Reading], None], simulate: bool = False,
                 unpaced_in_flight: Callable[[], int] | None = None,
                 deferral: Deferral | None = None) -> None:
        self.meters = meters
        self.clock = clock
        self.on_reading = on_reading
        self.simulate = simulate
        # Set: simulated meters are fed unpaced, in process, while this stays bounded
        # (the pipeline's readings not yet journaled); see wattd.simulator.unpaced.
        self.unpaced_in_flight = unpaced_in_flight
        self.deferral = deferral  # serial meters keep whole frames for its cycle
        self.sources: dict[str, Source] = {}
        self.simulators: dict[str, Any] = {}
        self.crashes: dict[str, int] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._sim_dir: TemporaryDirectory[str] | None = None
        self._stopping = False

    async def start(self) -> None:
        for meter in self.meters:
            try:
                source = self._make_source(meter)
            except Exception:
                log.exception("meter_setup_failed", meter=meter.name)
                continue
            self.sources[meter.name] = source
            self._tasks[meter.name] = asyncio.create_task(self._supervise(meter.name, source),
                                                          name=f"meter-{meter.name}")

    def _simulation_dir(self) -> str:
        """The simulated meters' directory (tempfile imported only to simulate)."""
        if self._sim_dir is None:
            import tempfile

            self._sim_dir = tempfile.TemporaryDirectory(prefix="wattd-sim-")
        return self._sim_dir.name

    def _simulated_port(self, meter: MeterConfig) -> str:
        from wattd.simulator.meter import start_simulated_meter

        sim_dir = Path(self._simulation_dir())
        driver = "gb202" if meter.driver == "simulated" else meter.driver
        power_w = meter.power_w
        if power_w is None and meter.profile is None:
            power_w = SIMULATED_DEFAULT_POWER_W
        link = sim_dir / f"{meter.name}.tty"
        server = start_simulated_meter(driver, power_w=power_w, profile=meter.profile,
                                       calibration=meter.calibration or None, link_path=link,
                                       address=meter.address, power_model=meter.power_model,
                                       idle_w=meter.idle_w, busy_w=meter.busy_w)
        self.simulators[meter.name] = server
        log.info("simulated_meter_started", meter=meter.name, driver=driver,
                 port=str(server.port_path), power_w=power_w, profile=meter.profile)
        return str(server.port_path)

    def _make_source(self, meter: MeterConfig) -> Source:
        if meter.driver == "pulse":
            from wattd.sources.pulse_source import PulseSource

            return PulseSource(meter, on_reading=self.on_reading, clock=self.clock)
        if meter.driver in POLLED_DRIVERS:  # SPEC 8 meters: wattd.daemon.polled_meters
            return self._polled_source(meter)
        simulated = meter.driver == "simulated" or (self.simulate and meter.driver in
                                                    SERIAL_DRIVERS)
        if simulated and self.unpaced_in_flight is not None:
            return self._unpaced_source(meter)
        port = self._simulated_port(meter) if simulated else meter.port
        driver = "gb202" if meter.driver == "simulated" else meter.driver
        from wattd.sources.serial_config import make_serial_source

        assert port is not None  # config validation requires a port for serial drivers
        return make_serial_source(meter, port=port, driver=driver, clock=self.clock,
                                  on_reading=self.on_reading, deferral=self.deferral)

    def _polled_source(self, meter: MeterConfig) -> Source:
        from wattd.daemon.polled_meters import make_polled_source

        sim_dir = None
        if self.simulate:
            sim_dir = self._simulation_dir()
        source, simulator = make_polled_source(meter, on_reading=self.on_reading,
                                               clock=self.clock, simulate_dir=sim_dir)
        if simulator is not None:
            self.simulators[meter.name] = simulator
            log.info("simulated_meter_started", meter=meter.name, driver=meter.driver,
                     port=source.transport.port, power_w=meter.power_w, profile=meter.profile)
        return source

    def _unpaced_source(self, meter: MeterConfig) -> Source:
        from wattd.simulator.meter import make_chip
        from wattd.simulator.unpaced import UnpacedFeed
        from wattd.sources.serial_config import make_serial_source

        assert self.unpaced_in_flight is not None
        driver = "gb202" if meter.driver == "simulated" else meter.driver
        power_w = meter.power_w
        if power_w is None and meter.profile is None:
            power_w = SIMULATED_DEFAULT_POWER_W
        chip = make_chip(driver, power_w=power_w, profile=meter.profile,
                         calibration=meter.calibration or None, address=meter.address,
                         power_model=meter.power_model, idle_w=meter.idle_w,
                         busy_w=meter.busy_w)
        source = make_serial_source(meter, port="unpaced", driver=driver, clock=self.clock,
                                    on_reading=self.on_reading)
        log.info("simulated_meter_started", meter=meter.name, driver=driver, port="unpaced",
                 power_w=power_w, profile=meter.profile)
        return UnpacedFeed(source, chip, in_flight=self.unpaced_in_flight)

    async def _supervise(self, name: str, source: Source) -> None:
        backoff = Backoff(RESTART_FIRST_S, RESTART_MAX_S, jitter=0.0)
        loop = asyncio.get_running_loop()
        while not self._stopping:
            started = loop.time()
            try:
                await source.run()
            except asyncio.CancelledError:
                raise
            except Exception:
                self.crashes[name] = self.crashes.get(name, 0) + 1
                pause = backoff.next_restart_delay(loop.time() - started)
                log.exception("meter_source_crashed", meter=name, crashes=self.crashes[name],
                              restart_in_s=pause)
                await asyncio.sleep(pause)
            else:
                return

    async def stop(self) -> None:
        self._stopping = True
        for source in self.sources.values():
            stopping = source.stop()
            if stopping is not None:
                await stopping
        if self._tasks:
            _done, pending = await asyncio.wait(self._tasks.values(), timeout=3.0)
            for task in pending:
                task.cancel()
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        self._tasks.clear()
        for name, server in self.simulators.items():
            try:
                server.stop()
            except Exception:
                log.exception("simulator_stop_failed", meter=name)
        self.simulators.clear()
        if self._sim_dir is not None:
            self._sim_dir.cleanup()
            self._sim_dir = None

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for meter in self.meters:
            source = self.sources.get(meter.name)
            entry: dict[str, Any] = {"driver": meter.driver}
            if source is None:
                entry["state"] = "setup failed"
            else:
                entry.update(source.status())
            if meter.name in self.crashes:
                entry["crashes"] = self.crashes[meter.name]
            out[meter.name] = entry
        return out
