"""The fan-out client's pure parts and the multicast config checks (SPEC 10)."""

from __future__ import annotations

import pytest

from wattd.config import MarkersConfig
from wattd.config.fleet import MulticastConfig
from wattd.errors import ConfigError, UsageError
from wattd.markers import wire
from wattd.markers.fanout import AllowList, Expectation, FanoutResult, stop_total
from wattd.markers.multicast import check_multicast, parse_group


def _reply(text: str) -> wire.Reply:
    return wire.parse_reply(text.encode())


def test_stop_total_counts_meters_of_multi_meter_daemons_and_skips_errors() -> None:
    result = FanoutResult({
        ("10.0.0.1", 40001): _reply("ok stop r energy_j=10.5 duration_s=1 id=a"),
        ("10.0.0.2", 40002): _reply("ok stop r energy_j=30 energy_j.m1=10 energy_j.m2=20 "
                                    "duration_s=1 id=a"),
        ("10.0.0.3", 40003): _reply("error busy meter m3 has run x open id=a"),
    }, ignored=0, sends=1)
    assert stop_total(result) == "total energy_j=40.5 meters=3 daemons=2"


def test_stop_total_has_no_energy_when_a_meter_had_no_readings() -> None:
    result = FanoutResult({
        ("10.0.0.1", 40001): _reply("ok stop r energy_j=10.5 duration_s=1 id=a"),
        ("10.0.0.2", 40002): _reply("ok stop r energy_j.m1=10 duration_s=1 samples=3 "
                                    "no_readings=m2 id=a"),
        ("10.0.0.3", 40003): _reply("ok stop r duration_s=1 samples=0 no_readings=m3 id=a"),
    }, ignored=0, sends=1)
    # Never a sum that counts the silent meters as 0 J.
    assert stop_total(result) == "total meters=4 daemons=3 no_readings=m2,m3"


def test_expectation_counts_or_names_daemons() -> None:
    assert Expectation.parse(None).count == 1
    assert Expectation.parse("3").count == 3
    listed = Expectation.parse("10.0.0.1,10.0.0.2:40002")
    assert listed.count == 2
    replied = {("10.0.0.2", 40002): _reply("ok event r id=a")}
    assert listed.missing(replied) == ["10.0.0.1"]
    with pytest.raises(UsageError):
        Expectation.parse("0")


def test_allow_list_of_the_client() -> None:
    allow = AllowList(["192.168.1.0/24"])
    assert allow("192.168.1.7")
    assert not allow("192.168.2.7")
    assert not allow("not-an-ip")
    assert AllowList([])("203.0.113.9")  # no list: every reply counts
    with pytest.raises(UsageError):
        AllowList(["nonsense"])


@pytest.mark.parametrize(("group", "message"), [
    ("10.0.0.1:9288", "not an IPv4 multicast address"),
    ("239.1.2.3:99999", "bad port"),
    ("ff02::1", "not an IPv4 address"),
])
def test_bad_groups_are_config_errors(group: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_group(group)


def test_multicast_needs_a_secret_or_an_allow_list() -> None:
    group = MulticastConfig("239.192.92.88:9288", "127.0.0.1")
    with pytest.raises(ConfigError, match=r"secret_file or markers\.allow"):
        check_multicast(MarkersConfig(multicast=group))
    assert check_multicast(MarkersConfig(multicast=group, allow=["10.0.0.0/8"])) == \
        ("239.192.92.88", 9288, "127.0.0.1")
    assert check_multicast(MarkersConfig()) is None
    # A wildcard unicast listen on the group's port would take the group's datagrams too.
    with pytest.raises(ConfigError, match="another port or a specific address"):
        check_multicast(MarkersConfig(listen=["0.0.0.0:9288"], multicast=group,
                                      allow=["10.0.0.0/8"]))
    assert check_multicast(MarkersConfig(listen=["0.0.0.0:9300"], multicast=group,
                                         allow=["10.0.0.0/8"])) is not None
