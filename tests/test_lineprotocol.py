"""Line protocol: escaping, types, and round trips."""

from __future__ import annotations

import contextlib
import math
import re

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from wattd.lineprotocol import LineProtocolError, format_field, format_line, parse_line
from wattd.readings import (
    DERIVED_DIGITS,
    DERIVED_FIELDS,
    POWER_MEASUREMENT,
    Reading,
    format_derived,
)


def reference_line(reading: Reading) -> str:
    """What ``Reading.to_line`` must write, from the public formatters alone:
    format_line's head, the fields in order with the derived ones in DERIVED_DIGITS
    digits, the timestamp."""
    probe = format_line(POWER_MEASUREMENT, {**reading.tags, "meter": reading.meter},
                        {"f": 0.0}, 0)
    head = probe.rsplit(" ", 2)[0]
    body = ",".join(f"{name}={format_derived(value)}"
                    if name in DERIVED_FIELDS and isinstance(value, float) else
                    f"{name}={format_field(value)}"
                    for name, value in reading.fields().items())
    return f"{head} {body} {int(reading.t_ns)}"


def test_format_types_and_escapes() -> None:
    line = format_line("wattd_power", {"meter": "pi 3", "run": "a,b=c"},
                       {"power_w": 3.5, "samples": 3, "ok": True, "text": 'k=v "x"'}, 123)
    assert line == ('wattd_power,meter=pi\\ 3,run=a\\,b\\=c '
                    'power_w=3.5,samples=3i,ok=true,text="k=v \\"x\\"" 123')


def test_empty_tag_values_are_omitted_and_tags_sorted() -> None:
    assert format_line("m", {"b": "2", "a": "1", "c": ""}, {"v": 1.0}, 5) == "m,a=1,b=2 v=1.0 5"


def test_non_finite_float_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot carry"):
        format_line("m", {}, {"v": float("nan")}, 1)


@pytest.mark.parametrize("bad", ["", "m", "m v=", "m v=1 x", 'm v="open 1', "m,t v=1 1",
                                 "m v=nan 1", "m v=1 1 2 3"])
def test_bad_lines_raise_only_their_error(bad: str) -> None:
    with pytest.raises(LineProtocolError):
        parse_line(bad)


_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\\"),
                min_size=1, max_size=20)
_key = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True)
_value = st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(-2**62, 2**62),
                   st.booleans(), _text)


@given(tags=st.dictionaries(_key, _text, max_size=4),
       fields=st.dictionaries(_key, _value, min_size=1, max_size=4),
       t_ns=st.integers(0, 2**62))
def test_round_trip(tags: dict[str, str], fields: dict[str, object], t_ns: int) -> None:
    line = format_line("wattd_power", tags, fields, t_ns)  # type: ignore[arg-type]
    point = parse_line(line)
    assert point.measurement == "wattd_power"
    assert point.tags == tags
    assert point.fields == fields
    assert point.t_ns == t_ns


@given(st.text(max_size=200))
def test_parser_raises_nothing_else(text: str) -> None:
    with contextlib.suppress(LineProtocolError):
        parse_line(text)


_tag_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=8)
_maybe_value = st.one_of(st.none(), st.floats(width=64), st.integers(-10**6, 10**6),
                         st.sampled_from([0.0, -0.0, 1e308, -1e308, 5e-324]))


@given(meter=_tag_text, tags=st.dictionaries(_tag_text, _tag_text, max_size=4),
       values=st.lists(_maybe_value, min_size=6, max_size=6),
       synced=st.booleans(), t_ns=st.integers(0, 2**63))
@example(meter="pi", tags={"run": "a b", "meter": "x"}, values=[1e308] * 6, synced=True,
         t_ns=1)  # finite values whose sum overflows
@example(meter="pi", tags={}, values=[1.0, 2.0, float("inf"), 3.0, 4.0, 5.0], synced=False,
         t_ns=1)
def test_reading_line_equals_generic_format(meter: str, tags: dict[str, str],
                                            values: list[float | None], synced: bool,
                                            t_ns: int) -> None:
    # Reading.to_line (cached head, fast path) is the public formatters' line byte for
    # byte, and that is format_line with the derived fields in DERIVED_DIGITS digits: power_w
    # and energy_j parse back exactly, the derived ones to 7 significant digits.
    reading = Reading(meter, t_ns, t_ns, *values, clock_synced=synced, tags=dict(tags))
    try:
        expected = format_line(POWER_MEASUREMENT, {**tags, "meter": meter}, reading.fields(),
                               t_ns)
    except ValueError as exc:
        with pytest.raises(ValueError, match=re.escape(str(exc))):
            reading.to_line()
        return
    line = reading.to_line()
    assert line == reference_line(reading)
    assert line == reading.to_line()  # the cached head gives the same line again
    # Same head and timestamp; fields parsed on their own (hypothesis' empty tag keys
    # are written as given but are no valid line to parse back).
    want_head, want_fields, want_t = expected.rsplit(" ", 2)
    got_head, got_fields, got_t = line.rsplit(" ", 2)
    assert (got_head, got_t) == (want_head, want_t)
    want, got = parse_line(f"m {want_fields} 1"), parse_line(f"m {got_fields} 1")
    assert got.fields.keys() == want.fields.keys()
    for name, value in want.fields.items():
        if name in DERIVED_FIELDS:
            assert isinstance(value, float)
            assert math.isclose(got.fields[name], value, rel_tol=10.0 ** -(DERIVED_DIGITS - 1),
                                abs_tol=1e-300)
        else:
            assert got.fields[name] == value  # exact: energies are integrated from these
            assert repr(got.fields[name]) == repr(value)


@given(picks=st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4), st.integers(0, 1),
                                st.booleans()), min_size=1, max_size=30))
def test_reading_lines_with_shared_float_objects(picks: list[tuple[int, int, int, bool]]) -> None:
    # Decoders hand on the same float object while a value is held: reprs reused by
    # identity must still be the reading's own (signed zeros, meters, tag sets).
    pool = [0.0, -0.0, 1.5, float(3), 2.5e-7]
    for p_idx, e_idx, meter_idx, in_run in picks:
        tags = {"run": "r 1"} if in_run else {}
        meter = ("a", "b")[meter_idx]
        reading = Reading(meter, 7, 7, pool[p_idx], 230.0, 0.1, 23.0, 0.5, pool[e_idx],
                          tags=tags)
        assert reading.to_line() == reference_line(reading)
        got = parse_line(reading.to_line())
        assert repr(got.fields["power_w"]) == repr(pool[p_idx])
        assert repr(got.fields["energy_j"]) == repr(pool[e_idx])
        assert got.tags == {**tags, "meter": meter}
