"""The generic YAML -> dataclass builder, on a small schema of its own."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from wattd.config.loader import NOT_A_KEY, ONE_OR_MANY, load_dataclass, parse_document
from wattd.errors import ConfigError


@dataclass
class Pump:
    name: str
    rate_l_per_min: float = 1.0
    mode: Literal["auto", "manual"] = "auto"
    limits: tuple[float, float] = (0.0, 10.0)


@dataclass
class Plant:
    pumps: list[Pump]
    hosts: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    spares: list[Pump] = field(default_factory=list, metadata=ONE_OR_MANY)
    port: int | None = None
    enabled: bool = True
    origin: str = field(default="-", metadata=NOT_A_KEY)


def load(text: str) -> Plant:
    plant, _ = load_dataclass(Plant, text, "plant.yaml")
    return plant


def error_of(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load(text)
    return info.value


def test_values_are_typed_and_defaults_filled() -> None:
    plant = load("pumps:\n  - {name: p1, rate_l_per_min: 3, mode: manual, limits: [1, 2]}\n"
                 "hosts: h1\nlabels: {site: 7}\nport: 80\n")
    assert plant.pumps == [Pump("p1", 3.0, "manual", (1.0, 2.0))]
    assert isinstance(plant.pumps[0].rate_l_per_min, float)
    assert plant.hosts == ["h1"]  # one string where a list of strings is expected
    assert plant.labels == {"site": "7"}
    assert plant.port == 80
    assert plant.enabled is True
    assert plant.origin == "-"


def test_one_or_many_field_takes_a_single_mapping_and_keeps_its_lines() -> None:
    plant = load("pumps: []\nspares: {name: s1}\n")
    assert plant.spares == [Pump("s1")]
    err = error_of("pumps: []\nspares:\n  name: s1\n  rate_l_per_min: fast\n")
    assert (err.line, err.key) == (4, "spares[0].rate_l_per_min")


def test_a_plain_list_field_refuses_a_single_mapping() -> None:
    err = error_of("pumps: {name: p1}\n")
    assert err.key == "pumps"
    assert "must be a list" in err.message


@pytest.mark.parametrize(
    ("text", "line", "key", "fragment"),
    [
        ("pumps:\n  - name: p1\n    rate_l_per_mn: 2\n", 3, "pumps[0].rate_l_per_mn",
         "did you mean 'rate_l_per_min'"),
        ("pumps: []\nzzz: 1\n", 2, "zzz", "known keys: pumps, hosts"),
        ("pumps: []\norigin: here\n", 2, "origin", "unknown key"),
        ("pumps:\n  - {rate_l_per_min: 2}\n", 2, "pumps[0].name", "is required"),
        ("hosts: []\n", None, "pumps", "is required"),
        ("pumps:\n  - {name: p, mode: turbo}\n", 2, "pumps[0].mode", "must be one of auto"),
        ("pumps:\n  - {name: p, limits: [1]}\n", 2, "pumps[0].limits", "list of 2 numbers"),
        ("pumps: []\nport: eighty\n", 2, "port", "must be an integer"),
        ("pumps: []\nport: true\n", 2, "port", "must be an integer"),
        ("pumps: []\nenabled: 1\n", 2, "enabled", "must be true or false"),
        ("pumps: []\nlabels: [a]\n", 2, "labels", "must be a mapping"),
        ("pumps:\n  - {name: [x]}\n", 2, "pumps[0].name", "must be a string"),
    ],
)
def test_errors_name_file_line_and_key(text: str, line: int | None, key: str,
                                       fragment: str) -> None:
    err = error_of(text)
    assert err.file == "plant.yaml"
    assert err.line == line
    assert err.key == key
    assert fragment in err.message


def test_documents_that_are_not_a_mapping() -> None:
    with pytest.raises(ConfigError, match="invalid YAML") as info:
        parse_document("a: [1\n", "x.yaml")
    assert info.value.line is not None
    with pytest.raises(ConfigError, match="nothing here"):
        parse_document("# only a comment\n", "x.yaml", empty="nothing here")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        parse_document("- 1\n- 2\n", "x.yaml")


def test_builder_errors_point_at_the_nearest_known_line() -> None:
    _, builder = parse_document("pumps:\n  - name: p1\n", "x.yaml")
    err = builder.error(("pumps", 0, "not_there"), "checked later")
    assert (err.line, err.key) == (2, "pumps[0].not_there")
    assert str(err) == "x.yaml:2: key 'pumps[0].not_there': checked later"
