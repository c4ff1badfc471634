"""The one host:port parser: listen addresses, marker targets, SNTP servers."""

from __future__ import annotations

import pytest

from wattd.netaddr import HttpTarget, parse_listen, split_host_port


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1:9288", ("127.0.0.1", 9288)),
    ("  10.0.0.7:1  ", ("10.0.0.7", 1)),
    ("bench-host:7000", ("bench-host", 7000)),
    ("bench-host", ("bench-host", 99)),
    ("[::1]:9300", ("::1", 9300)),
    ("[fe80::1%eth0]", ("fe80::1%eth0", 99)),
    ("::1", ("::1", 99)),
    ("2001:db8::5", ("2001:db8::5", 99)),
])
def test_split_host_port(text: str, expected: tuple[str, int]) -> None:
    assert split_host_port(text, 99) == expected


@pytest.mark.parametrize(("text", "fragment"), [
    ("", "no host"),
    (":123", "no host"),
    ("[]:5", "no host"),
    ("[::1", "missing ']'"),
    ("[::1]x", "bad address"),
    ("host:", "bad port"),
    ("host:x", "bad port"),
    ("host:-1", "bad port"),
    ("host:65536", "bad port"),
    ("host:0", "bad port"),
    ("[::1]:", "bad port"),
])
def test_split_host_port_refuses(text: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        split_host_port(text, 99)


def test_port_zero_only_where_asked() -> None:
    assert split_host_port("127.0.0.1:0", 99, allow_port_zero=True) == ("127.0.0.1", 0)
    assert split_host_port("127.0.0.1:65535", 99) == ("127.0.0.1", 65535)


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1:9288", ("127.0.0.1", 9288)),
    ("[::]:9300", ("::", 9300)),
    ("0.0.0.0", ("0.0.0.0", 9288)),
    ("[::1]", ("::1", 9288)),
    ("localhost:5", ("localhost", 5)),
    ("127.0.0.1:0", ("127.0.0.1", 0)),
])
def test_parse_listen(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


def test_listen_host_must_be_an_ip_address() -> None:
    with pytest.raises(ValueError, match="host must be an IP address"):
        parse_listen("bench-host:9288")


def test_http_target_parts_of_a_url() -> None:
    target = HttpTarget.from_url("https://[::1]:8443/influx/")
    assert (target.https, target.host, target.port, target.base_path) == (True, "::1", 8443,
                                                                         "/influx")
    plain = HttpTarget.from_url("http://plug.local")
    assert (plain.https, plain.host, plain.port, plain.base_path) == (False, "plug.local", None, "")


@pytest.mark.parametrize("url", ["ftp://host/", "http://", "plug.local:80", ""])
def test_http_target_refuses_what_is_not_an_http_url(url: str) -> None:
    with pytest.raises(ValueError, match="not an http"):
        HttpTarget.from_url(url)
