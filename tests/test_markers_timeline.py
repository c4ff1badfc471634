"""The marker timeline: run/phase rules shared by the engine, the restore and the report."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wattd.errors import MarkerInputError
from wattd.markers.timeline import (
    MARKER,
    REPLACED,
    SUPERSEDED,
    WITH_RUN,
    Mark,
    Timeline,
    decode_tags,
    encode_tags,
)


def apply(timeline: Timeline, mark: Mark, t_ns: int) -> list[tuple[str, str | None, str, str]]:
    """Apply a mark; the closed spans as (meter, phase, run, cause)."""
    change = timeline.apply(mark, t_ns, timeline.targets(mark))
    return [(c.span.meter, c.span.phase, c.span.run, c.cause) for c in change.closed]


def test_start_targets_every_meter_and_refuses_a_busy_one() -> None:
    timeline = Timeline(["a", "b"])
    apply(timeline, Mark("start", "r", tags={"k": "v"}), 10)
    assert [(run.meter, run.run, run.start_ns) for run, _ in timeline.open_runs()] == [
        ("a", "r", 10), ("b", "r", 10)]
    with pytest.raises(MarkerInputError) as busy:
        timeline.targets(Mark("start", "other", meter="b"))
    assert busy.value.reason == "busy"
    assert busy.value.detail == "b has run r"
    with pytest.raises(MarkerInputError) as unknown:
        timeline.targets(Mark("start", "other", meter="zz"))
    assert (unknown.value.reason, unknown.value.detail) == ("unknown", "no meter 'zz'")


def test_phases_close_each_other_and_close_with_their_run() -> None:
    timeline = Timeline(["a"])
    apply(timeline, Mark("start", "r", tags={"lang": "rust"}), 1)
    assert apply(timeline, Mark("start", "r", phase="warm", tags={"n": "1"}), 2) == []
    assert timeline.reading_tags("a") == {"lang": "rust", "n": "1", "run": "r", "phase": "warm"}
    assert apply(timeline, Mark("start", "r", phase="load"), 3) == [("a", "warm", "r", REPLACED)]
    with pytest.raises(MarkerInputError, match="phase 'warm' of run 'r' is not open"):
        timeline.targets(Mark("stop", "r", phase="warm"))
    assert apply(timeline, Mark("stop", "r"), 4) == [("a", "load", "r", WITH_RUN),
                                                     ("a", None, "r", MARKER)]
    assert timeline.open_runs() == []
    assert timeline.reading_tags("a") is None
    with pytest.raises(MarkerInputError, match="run 'r' is not open"):
        timeline.targets(Mark("stop", "r"))


def test_a_phase_without_meter_follows_its_run_meters() -> None:
    timeline = Timeline(["a", "b"])
    apply(timeline, Mark("start", "only-a", meter="a"), 1)
    change = timeline.apply(Mark("start", "only-a", phase="p"), 2,
                            timeline.targets(Mark("start", "only-a", phase="p")))
    assert [span.meter for span in change.opened] == ["a"]


def test_a_meter_first_seen_later_joins_the_run_started_for_every_meter() -> None:
    timeline = Timeline()
    apply(timeline, Mark("start", "all", tags={"k": "v"}), 5)  # no meter known yet
    apply(timeline, Mark("start", "all", phase="p"), 6)
    joined = timeline.add_meter("late")
    assert [(s.run, s.phase, s.start_ns, s.tags) for s in joined] == [
        ("all", None, 5, {"k": "v"}), ("all", "p", 6, {"k": "v"})]
    apply(timeline, Mark("stop", "all"), 9)
    assert timeline.add_meter("later") == []


def test_a_late_meter_carries_the_run_tags_then_the_phase_tags() -> None:
    timeline = Timeline(["a"], keep_tags=True)
    apply(timeline, Mark("start", "all"), 10)
    apply(timeline, Mark("start", "all", phase="p"), 20)
    timeline.add_meter("late")
    assert timeline.tags_at("late", 15) == {"run": "all"}
    assert timeline.tags_at("late", 25) == {"run": "all", "phase": "p"}


def test_a_run_closed_meter_by_meter_is_not_joined_later() -> None:
    timeline = Timeline(["a"])
    apply(timeline, Mark("start", "r"), 1)
    apply(timeline, Mark("stop", "r", meter="a"), 2)
    assert timeline.add_meter("b") == []


def test_replay_never_refuses_a_start_it_supersedes_the_lost_run() -> None:
    live, replay = Timeline(["a"]), Timeline(["a"], replay=True)
    for timeline in (live, replay):
        apply(timeline, Mark("start", "lost"), 1)
    with pytest.raises(MarkerInputError):
        live.targets(Mark("start", "next"))
    assert apply(replay, Mark("start", "next"), 2) == [("a", None, "lost", SUPERSEDED)]
    assert [run.run for run, _ in replay.open_runs()] == ["next"]


def test_reading_tags_over_time() -> None:
    timeline = Timeline(["a"], keep_tags=True)
    apply(timeline, Mark("start", "r", tags={"k": "v"}), 10)
    apply(timeline, Mark("start", "r", phase="p"), 20)
    apply(timeline, Mark("stop", "r"), 30)
    assert timeline.tags_at("a", 9) is None
    assert timeline.tags_at("a", 10) == {"k": "v", "run": "r"}
    assert timeline.tags_at("a", 25) == {"k": "v", "run": "r", "phase": "p"}
    assert timeline.tags_at("a", 30) is None
    timeline.forget_tags_before("a", 20)
    assert timeline.tags_at("a", 10) is None  # forgotten: ended at 20
    assert timeline.tags_at("a", 25) is not None


def test_marker_text_tags_round_trip_and_damage_drops_only_the_bad_item() -> None:
    assert decode_tags("requests=500000 note=two%20words") == {
        "requests": "500000", "note": "two words"}
    assert encode_tags({"note": "a b=c%"}) == "note=a%20b%3Dc%25"
    assert decode_tags("good=1 bad=%zz =x alone") == {"good": "1"}


@given(st.dictionaries(st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True),
                       st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1,
                               max_size=40), max_size=8))
def test_encoded_tags_decode_to_themselves(tags: dict[str, str]) -> None:
    assert decode_tags(encode_tags(tags)) == tags
