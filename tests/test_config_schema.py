"""The configuration schema: typed values, defaults, cross-key checks, and errors
naming file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from wattd.config import load_config, load_config_text, parse_listen
from wattd.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def test_example_config_is_valid_and_documents_defaults() -> None:
    cfg = load_config(ROOT / "config.example.yaml", )
    meter = cfg.meters[0]
    assert meter.driver == "gb202"
    assert meter.calibration == {"kv": 1.88, "ki": 1.0}
    assert meter.plausible.voltage_v == (80.0, 300.0)
    assert cfg.markers.listen == ["127.0.0.1:9288"]
    assert cfg.markers.rate.per_s == 100.0
    assert cfg.journal.fsync_interval_s == 1.0
    assert cfg.journal.max_bytes == 1 << 30
    assert cfg.influxdb == []


def test_minimal_config_gets_defaults() -> None:
    cfg = load_config_text("meters: [{name: a, driver: cse7766, port: /dev/ttyUSB0}]",
                           environ={})
    assert cfg.journal.dir == "/var/lib/wattd"
    assert cfg.markers.stop_wait_s == 5.0
    assert cfg.markers.effective_holdback_ms() == 250.0 + 110.0
    assert cfg.clock.require_sync is False
    assert cfg.gpio is None


def test_state_directory_overrides_journal_dir() -> None:
    cfg = load_config_text("meters: [{name: a, port: /dev/x}]\njournal: {dir: ./j}",
                           environ={"STATE_DIRECTORY": "/var/lib/wattd:/other"})
    assert cfg.journal.dir == "/var/lib/wattd"


def test_influxdb_single_mapping_becomes_list() -> None:
    cfg = load_config_text(
        "meters: [{name: a, port: /dev/x}]\n"
        "influxdb: {url: 'http://127.0.0.1:8086', api: v1, database: w}\n", environ={})
    assert len(cfg.influxdb) == 1
    assert cfg.influxdb[0].database == "w"
    assert cfg.influxdb[0].sink_name.startswith("v1-http")


@pytest.mark.parametrize(
    ("text", "line", "key", "fragment"),
    [
        ("meters:\n  - name: a\n    port: /dev/x\n    latncy_ms: 3\n", 4, "meters[0].latncy_ms",
         "did you mean 'latency_ms'"),
        ("meters:\n  - name: a\n    driver: cse7767\n    port: x\n", 3, "meters[0].driver",
         "did you mean 'cse7766'"),
        ("meters:\n  - name: a\n    port: x\n    latency_ms: fast\n", 4, "meters[0].latency_ms",
         "must be a number"),
        ("meters:\n  - name: a\n    driver: gb202\n", 2, "meters[0].port", "needs a serial"),
        ("meters:\n  - {name: a, port: x}\n  - {name: a, port: y}\n", 3, "meters[1].name",
         "duplicate"),
        ("meters:\n  - {name: a, port: x}\nmarkers:\n  listen: ['10.0.0.1:x']\n", 4,
         "markers.listen[0]", "bad port"),
        ("meters:\n  - {name: a, port: x}\njournal:\n  max_bytes: -1\n", 4,
         "journal.max_bytes", "must be > 0"),
        ("meters:\n  - {name: a, port: x}\ninfluxdb:\n  url: ftp://x\n  database: d\n", 4,
         "influxdb[0].url", "http"),
    ],
)
def test_errors_name_file_line_and_key(text: str, line: int, key: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config_text(text, "my.yaml", environ={})
    err = info.value
    assert err.file == "my.yaml"
    assert err.line == line
    assert err.key == key
    assert fragment in str(err)
    assert str(err).startswith(f"my.yaml:{line}: key '{key}'")


def test_invalid_yaml_names_line() -> None:
    with pytest.raises(ConfigError) as info:
        load_config_text("meters:\n  - name: [a\n", "bad.yaml", environ={})
    assert info.value.line is not None
    assert "invalid YAML" in str(info.value)


def test_missing_meters_is_an_error() -> None:
    with pytest.raises(ConfigError, match="'meters': is required"):
        load_config_text("journal: {dir: x}\n", "f.yaml", environ={})


def test_secret_files_are_read_and_stripped(tmp_path: Path) -> None:
    secret = tmp_path / "s"
    secret.write_text("  hunter2\n")
    cfg = load_config_text(
        f"meters: [{{name: a, port: x}}]\nmarkers: {{secret_file: {secret}}}\n", environ={})
    assert cfg.markers.secret == b"hunter2"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("127.0.0.1:9288", ("127.0.0.1", 9288)), ("[::]:9300", ("::", 9300)),
     ("0.0.0.0", ("0.0.0.0", 9288)), ("[::1]", ("::1", 9288))],
)
def test_parse_listen(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


def test_driver_names_come_from_the_registry() -> None:
    from wattd.protocols.registry import driver_names, serial_driver_names

    for driver in serial_driver_names():
        cfg = load_config_text(f"meters: [{{name: a, driver: {driver}, port: /dev/x}}]",
                               environ={})
        assert cfg.meters[0].driver == driver
    with pytest.raises(ConfigError) as info:
        load_config_text("meters: [{name: a, driver: nope, port: /dev/x}]", environ={})
    assert f"one of {', '.join(driver_names())}" in str(info.value)


def test_unreadable_or_empty_secret_files_are_config_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n")
    cfg = load_config_text(
        f"meters: [{{name: a, port: x}}]\nmarkers: {{secret_file: {empty}}}\n"
        f"influxdb: {{url: 'http://127.0.0.1:1', bucket: b, token_file: {empty},"
        f" username: u, password_file: {tmp_path / 'missing'}}}\n", environ={})
    with pytest.raises(ConfigError, match="is empty") as info:
        _ = cfg.markers.secret
    assert info.value.key == "markers.secret_file"
    assert cfg.influxdb[0].token() == ""  # an empty token is the database's to refuse
    with pytest.raises(ConfigError, match="cannot read secret file") as info:
        cfg.influxdb[0].password()
    assert info.value.key == "influxdb.password_file"


def test_a_credential_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_bytes(b"\xff\xfe\n")
    cfg = load_config_text(
        "meters: [{name: a, port: x}]\n"
        f"influxdb: {{url: 'http://127.0.0.1:1', bucket: b, token_file: {token}}}\n",
        environ={})
    with pytest.raises(ConfigError, match="not UTF-8") as info:
        cfg.influxdb[0].token()
    assert info.value.key == "influxdb.token_file"
