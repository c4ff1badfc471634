"""The marker UDP port and its listen/allow rules, on real loopback sockets."""

from __future__ import annotations

import asyncio
import socket

import pytest

from wattd.config import MarkersConfig
from wattd.errors import ConfigError
from wattd.markers.events import SourceAddress
from wattd.markers.port import AllowList, check_listen, open_port


def test_allow_list_always_lets_loopback_in() -> None:
    allow = AllowList(["10.1.0.0/16", "2001:db8::/32"])
    assert allow.allows("10.1.2.3")
    assert not allow.allows("10.2.0.1")
    assert allow.allows("127.0.0.5")
    assert allow.allows("::1")
    assert allow.allows("2001:db8::7")
    assert not allow.allows("fe80::1%eth0")
    assert not allow.allows("not an address")
    assert not AllowList([])  # empty: no allow-list check at all


def test_bad_cidr_and_listen_addresses_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="bad CIDR"):
        AllowList(["10.0.0.0/33"])
    with pytest.raises(ConfigError, match="host must be an IP address"):
        check_listen(MarkersConfig(listen=["pi.local:9288"]), None)
    with pytest.raises(ConfigError, match=r"secret_file or markers\.allow"):
        check_listen(MarkersConfig(listen=["[::]:9288"]), None)
    assert check_listen(MarkersConfig(listen=["[::]:9288"]), b"secret") == [("::", 9288)]


async def test_a_failing_handler_is_counted_and_the_port_keeps_reading() -> None:
    got: list[tuple[bytes, SourceAddress]] = []

    def handler(data: bytes, sender: SourceAddress) -> None:
        if data == b"boom":
            raise RuntimeError("handler bug")
        got.append((data, sender))

    counters = {"send_errors": 0, "internal_errors": 0}
    port = open_port("127.0.0.1", 0, 3, handler, counters)
    try:
        host, number = port.address
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.bind(("127.0.0.1", 0))
            client.sendto(b"boom", (host, number))
            client.sendto(b"ping", (host, number))
            for _ in range(200):
                if got:
                    break
                await asyncio.sleep(0.01)
            assert counters["internal_errors"] == 1
            ((data, sender),) = got
            assert data == b"ping"
            assert (sender.host, sender.port, sender.listener) == (
                "127.0.0.1", client.getsockname()[1], 3)
            assert port.send(b"pong", sender)
            client.settimeout(5)
            assert client.recv(100) == b"pong"
    finally:
        port.close()
    assert not port.send(b"late", sender)  # a closed port sends nothing


async def test_listening_twice_on_one_port_is_a_config_error() -> None:
    counters = {"send_errors": 0, "internal_errors": 0}
    first = open_port("127.0.0.1", 0, 0, lambda data, sender: None, counters)
    try:
        with pytest.raises(ConfigError, match=r"cannot listen on 127\.0\.0\.1"):
            open_port("127.0.0.1", first.address[1], 1, lambda data, sender: None, counters)
    finally:
        first.close()
