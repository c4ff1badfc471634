"""Typed marker events: the sender address as markers record and answer it."""

from __future__ import annotations

from wattd.markers.events import SourceAddress


def test_v4_mapped_sender_is_recorded_as_ipv4_and_answered_as_received() -> None:
    sender = SourceAddress.from_sockaddr(("::ffff:10.0.0.7", 4000, 0, 0), listener=1)
    assert sender.host == "10.0.0.7"
    assert sender.sockaddr() == ("::ffff:10.0.0.7", 4000)
    assert sender.listener == 1


def test_ipv6_scope_is_kept_for_the_reply() -> None:
    sender = SourceAddress.from_sockaddr(("fe80::1", 4000, 0, 2))
    assert sender.host == "fe80::1"
    assert sender.sockaddr() == ("fe80::1", 4000, 0, 2)
    assert SourceAddress.from_sockaddr(("127.0.0.1", 9)).sockaddr() == ("127.0.0.1", 9)
