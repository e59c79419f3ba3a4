"""TimelineStore: per-person and class series, bounded memory, whole-session summary."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pytest

from fermonitor.core.checkpoint import FERPLUS_CLASSES
from fermonitor.core.pipeline import INDICATORS
from fermonitor.core.results import FaceObservation, FrameResult
from fermonitor.core.timeline import TimelineStore

WALL = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)


def face(pid: int, top: str, indicator: str, p: float = 0.7) -> FaceObservation:
    probs = [(1 - p) / 7] * 8
    probs[FERPLUS_CLASSES.index(top)] = p
    return FaceObservation(pid, (10 * pid, 10, 50, 50), tuple(probs), top, p, indicator)


def result(t: float, faces: list[FaceObservation], absent: tuple[int, ...] = ()) -> FrameResult:
    return FrameResult(frame_index=int(t * 10), t_seconds=t, wall_time=WALL, frame_size=(640, 480),
                       faces=tuple(faces), absent_ids=absent)


def test_series_and_class_aggregate() -> None:
    store = TimelineStore(FERPLUS_CLASSES)
    store.append(result(0.0, [face(1, "happiness", "positive"), face(2, "anger", "negative")]))
    store.append(result(0.5, [face(1, "neutral", "neutral")], absent=(2,)))
    store.append(result(1.0, []))
    assert store.person_ids() == [1, 2]
    one = store.person_series(1)
    np.testing.assert_allclose(one.t, [0.0, 0.5])
    assert one.probabilities.shape == (2, 8)
    assert [INDICATORS[i] for i in one.indicator] == ["positive", "neutral"]
    two = store.person_series(2)
    assert [INDICATORS[i] for i in two.indicator] == ["negative", "absent"]
    assert np.isnan(two.probabilities[1]).all()
    cls = store.class_series()
    np.testing.assert_allclose(cls.t, [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(cls.faces_visible, [2, 1, 0])
    happiness, anger, neutral = (FERPLUS_CLASSES.index(c) for c in ("happiness", "anger", "neutral"))
    assert cls.expression_shares[0, happiness] == 0.5 and cls.expression_shares[0, anger] == 0.5
    assert cls.expression_shares[1, neutral] == 1.0
    np.testing.assert_allclose(cls.indicator_shares[0], [0.5, 0.0, 0.5, 0.0])
    np.testing.assert_allclose(cls.indicator_shares[1], [0.0, 0.5, 0.0, 0.5])
    np.testing.assert_allclose(cls.indicator_shares[2], 0.0)
    assert store.person_series(99).t.shape == (0,)


def test_summary_covers_the_whole_session() -> None:
    store = TimelineStore(FERPLUS_CLASSES, max_points=3)
    for i in range(10):
        store.append(result(i * 0.5, [face(1, "happiness" if i < 6 else "sadness", "positive" if i < 6 else "negative")],
                            absent=(2,) if i >= 8 else ()))
    summary = store.summary()
    assert summary[1].steps_seen == 10 and summary[1].first_t == 0.0 and summary[1].last_t == 4.5
    assert summary[1].top_expression_shares["happiness"] == pytest.approx(0.6)
    assert summary[1].indicator_shares == pytest.approx({"positive": 0.6, "neutral": 0.0, "negative": 0.4, "absent": 0.0})
    assert summary[1].mean_probabilities["happiness"] == pytest.approx(0.6 * 0.7 + 0.4 * 0.3 / 7)
    assert summary[2].steps_seen == 0 and summary[2].steps_absent == 2
    assert summary[2].indicator_shares["absent"] == 1.0
    # The series themselves keep only the newest three steps.
    np.testing.assert_allclose(store.person_series(1).t, [3.5, 4.0, 4.5])


def test_memory_is_flat_over_a_long_session() -> None:
    store = TimelineStore(FERPLUS_CLASSES, max_points=500)
    people = [face(pid, "neutral", "neutral") for pid in range(1, 6)]
    for i in range(600):
        store.append(result(i * 0.5, people))
    size_at_capacity = store.nbytes
    for i in range(600, 3000):
        store.append(result(i * 0.5, people))
    assert store.nbytes == size_at_capacity
    assert len(store) == 500
    series = store.person_series(3)
    assert len(series.t) == 500
    np.testing.assert_allclose(series.t[[0, -1]], [2500 * 0.5, 2999 * 0.5])
    assert np.all(np.diff(series.t) > 0)
    rings = [store.person_series(pid) for pid in range(1, 6)]
    assert all(len(r.t) == 500 for r in rings)


def test_max_points_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_points 0"):
        TimelineStore(FERPLUS_CLASSES, max_points=0)


@pytest.mark.parametrize("max_points", [1000, 300])  # 300: the ring has wrapped
def test_since_returns_only_the_recent_window(max_points: int) -> None:
    store = TimelineStore(FERPLUS_CLASSES, max_points=max_points)
    assert store.last_t is None
    for i in range(400):
        store.append(result(i * 0.5, [face(1, "neutral", "neutral")] if i % 2 else [], absent=() if i % 2 else (1,)))
    assert store.last_t == 199.5
    recent = store.person_series(1, since=190.0)
    np.testing.assert_allclose(recent.t, np.arange(190.0, 200.0, 0.5))
    full = store.person_series(1)
    np.testing.assert_array_equal(recent.indicator, full.indicator[-20:])
    np.testing.assert_array_equal(recent.probabilities, full.probabilities[-20:])
    cls = store.class_series(since=199.2)
    np.testing.assert_allclose(cls.t, [199.5])
    assert cls.faces_visible.tolist() == [1]
    oldest_kept = (400 - min(max_points, 400)) * 0.5
    np.testing.assert_allclose(store.class_series(since=-5.0).t[0], oldest_kept)
    assert len(store.person_series(1, since=500.0).t) == 0


def test_series_keep_only_the_history_and_forget_people_gone_but_not_their_summary() -> None:
    store = TimelineStore(FERPLUS_CLASSES, history_s=10.0, forget_after_s=5.0)
    for i in range(40):  # 20 s; person 1 leaves after 4 s, person 2 stays
        t = i * 0.5
        store.append(result(t, [face(2, "neutral", "neutral")] + ([face(1, "happiness", "positive")] if t < 4 else [])))
    assert store.person_ids() == [2]  # 1 was last seen at 3.5 s, more than 5 s before 19.5 s
    assert len(store.person_series(1).t) == 0
    np.testing.assert_allclose(store.person_series(2).t[[0, -1]], [9.5, 19.5])  # the last 10 s
    np.testing.assert_allclose(store.class_series().t[0], 9.5)
    assert store.summary()[1].steps_seen == 8 and store.summary()[2].steps_seen == 40
    assert store.person_last_t(1) == 3.5


def test_memory_stays_bounded_when_thousands_of_people_pass() -> None:
    store = TimelineStore(FERPLUS_CLASSES, history_s=600.0, forget_after_s=60.0)
    step = 0

    def run_for(seconds: float, first_id: int) -> None:
        nonlocal step
        for _ in range(int(seconds * 2)):
            group = first_id + (step // 120) * 30  # a new group of 30 people every minute
            store.append(result(step * 0.5, [face(pid, "neutral", "neutral") for pid in range(group, group + 30)]))
            step += 1

    run_for(600, 0)
    after_ten_minutes = store.nbytes  # the class series holds its whole history from here on
    run_for(3000, 0)  # 50 minutes more: 1,800 more people
    assert len(store.summary()) == 30 * 60
    assert len(store.person_ids()) <= 2 * 30  # the current group and the one before it
    assert store.nbytes <= 1.25 * after_ten_minutes
    assert store.version == step


def test_history_and_forget_times_must_be_positive() -> None:
    with pytest.raises(ValueError, match="history_s 0"):
        TimelineStore(FERPLUS_CLASSES, history_s=0)
