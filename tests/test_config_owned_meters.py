"""Config keys of the SPEC 8 meters: per-driver defaults and errors naming the key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from wattd.config import load_config_text
from wattd.config.polled import POLLED_DRIVERS
from wattd.errors import ConfigError
from wattd.protocols.registry import POLLED_METERS

ROOT = Path(__file__).resolve().parent.parent


def one(meter: str) -> str:
    return f"meters:\n  - {meter}\n"


def test_driver_names_and_defaults_match_the_registry() -> None:
    from wattd.config import polled as config_polled

    assert set(POLLED_DRIVERS) == set(POLLED_METERS)
    registry_defaults = {n: s.poll_interval_s for n, s in POLLED_METERS.items()}
    assert registry_defaults == config_polled._POLL_DEFAULTS_S
    assert set(config_polled._DC_DRIVERS) == {n for n, s in POLLED_METERS.items() if s.dc}


@pytest.mark.parametrize(("meter", "poll_s", "volts"), [
    ("{name: a, driver: mcp39f511n, port: /dev/ttyACM0}", 0.1, (80.0, 300.0)),
    ("{name: a, driver: um, port: /dev/rfcomm0}", 0.5, (0.0, 30.0)),
    ("{name: a, driver: hwmon, sensor: ina226}", 0.1, (0.0, 30.0)),
    ("{name: a, driver: hwmon, path: /sys/class/hwmon/hwmon2}", 0.1, (0.0, 30.0)),
    ("{name: a, driver: shelly, url: 'http://plug.local'}", 1.0, (80.0, 300.0)),
    ("{name: a, driver: tasmota, url: 'http://192.168.1.20'}", 1.0, (80.0, 300.0)),
])
def test_per_driver_defaults(meter: str, poll_s: float, volts: tuple[float, float]) -> None:
    cfg = load_config_text(one(meter), environ={})
    m = cfg.meters[0]
    assert m.poll_interval_s == poll_s
    assert m.plausible.voltage_v == volts
    if volts[0] == 0.0:
        assert m.plausible.current_a == (0.0, 10.0)


def test_given_values_win_over_driver_defaults() -> None:
    cfg = load_config_text(one("{name: a, driver: um, port: /dev/rfcomm0, poll_interval_s: 2,"
                               " plausible: {voltage_v: [4, 6]}}"), environ={})
    m = cfg.meters[0]
    assert m.poll_interval_s == 2.0
    assert m.plausible.voltage_v == (4.0, 6.0)
    assert m.plausible.current_a == (0.0, 10.0)


def test_a_slow_poll_with_a_longer_stop_wait_is_fine() -> None:
    cfg = load_config_text(one("{name: a, driver: shelly, url: 'http://p', poll_interval_s: 10}")
                           + "markers: {stop_wait_s: 15}\n", environ={})
    assert cfg.meters[0].poll_interval_s == 10.0


def test_plug_password_comes_from_its_file(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("hunter2\n")
    cfg = load_config_text(one(f"{{name: a, driver: shelly, url: 'http://p', username: admin,"
                               f" password_file: {secret}}}"), environ={})
    assert cfg.meters[0].password() == "hunter2"


@pytest.mark.parametrize(("meter", "key", "fragment"), [
    ("{name: a, driver: mcp39f511n}", "meters[0].port", "/dev/ttyACM0"),
    ("{name: a, driver: mcp39f511n, port: /dev/x, channel: 3}", "meters[0].channel",
     "channels 1 and 2"),
    ("{name: a, driver: um}", "meters[0].port", "rfcomm"),
    ("{name: a, driver: hwmon}", "meters[0]", "exactly one of 'path'"),
    ("{name: a, driver: hwmon, path: /sys/class/hwmon/hwmon2, sensor: ina226}", "meters[0]",
     "exactly one"),
    ("{name: a, driver: shelly}", "meters[0].url", "needs a 'url'"),
    ("{name: a, driver: tasmota, url: 'ftp://x'}", "meters[0].url", "http://"),
    ("{name: a, driver: shelly, url: 'http://p', username: admin}", "meters[0].password_file",
     "needs its password_file"),
    ("{name: a, driver: shelly, url: 'http://p', password_file: /nonexistent/pw}",
     "meters[0].password_file", "cannot read"),
    ("{name: a, driver: shelly, url: 'http://p', timeout_s: 0}", "meters[0].timeout_s", "> 0"),
    ("{name: a, driver: tasmota, url: 'http://p', poll_interval_s: 0}",
     "meters[0].poll_interval_s", "> 0"),
    ("{name: a, driver: tasmota, url: 'http://p', poll_interval_s: 5}",
     "meters[0].poll_interval_s", "markers.stop_wait_s (5 s)"),
    ("{name: a, driver: gb202, port: /dev/x, url: 'http://p'}", "meters[0].url", "only for"),
    ("{name: a, driver: um, port: /dev/x, sensor: ina226}", "meters[0].sensor", "only for"),
    ("{name: a, driver: shelly, url: 'http://p', pasword_file: x}", "meters[0].pasword_file",
     "did you mean 'password_file'"),
])
def test_bad_keys_are_refused(meter: str, key: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config_text(one(meter), file="w.yaml", environ={})
    assert err.value.key == key
    assert fragment in str(err.value)
    assert err.value.line == 2


def test_check_config_accepts_each_example_meter(tmp_path: Path) -> None:
    """The commented examples in config.example.yaml are valid when uncommented."""
    text = (ROOT / "config.example.yaml").read_text()
    start = text.index("# >>> SPEC 8 meters")
    end = text.index("# <<< SPEC 8 meters")
    block = "\n".join(line.replace("# ", "", 1) for line in text[start:end].splitlines()
                      if line.startswith(("  # - ", "  #   ")))
    secret = tmp_path / "plug.password"
    secret.write_text("x")
    block = block.replace("/etc/wattd/plug.password", str(secret))
    path = tmp_path / "c.yaml"
    path.write_text("meters:\n" + block + "\n")
    res = subprocess.run([sys.executable, "-m", "wattd", "check-config", str(path)],
                         capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 0, res.stderr
    for driver in POLLED_DRIVERS:
        assert f"({driver})" in res.stdout
