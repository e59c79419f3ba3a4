"""Alert rules without Qt: a class-level condition raises its message only once it has held long enough."""

from __future__ import annotations

from datetime import datetime

import pytest

from fermonitor.core.alerts import AlertMonitor, HeldCondition
from fermonitor.core.results import FaceObservation, FrameResult
from fermonitor.core.settings import AlertSettings, Settings
from fermonitor.core.tracking import Tracker


def _result(t: float, indicators: list[str], absent: int = 0) -> FrameResult:
    faces = tuple(FaceObservation(i + 1, (0, 0, 10, 10), (1.0,) + (0.0,) * 7, "neutral", 1.0, ind)
                  for i, ind in enumerate(indicators))
    return FrameResult(0, t, datetime.now().astimezone(), (100, 100), faces,
                       absent_ids=tuple(range(100, 100 + absent)))


def test_a_held_condition_counts_from_when_it_began_and_resets_when_it_breaks() -> None:
    held = HeldCondition(2.0)
    assert [held.update(True, t) for t in (1.0, 2.5, 3.0)] == [False, False, True]
    assert not held.update(False, 3.5)
    assert [held.update(True, t) for t in (4.0, 5.0, 6.0)] == [False, False, True]


def test_negative_alert_only_after_holding_for_its_time() -> None:
    monitor = AlertMonitor(AlertSettings(negative_share=0.4, negative_for_s=10.0, absent_count=3, absent_for_s=5.0))
    assert monitor.update(_result(0.0, ["negative", "negative", "neutral"])) == []
    assert monitor.update(_result(9.0, ["negative", "negative", "neutral"])) == []
    messages = monitor.update(_result(10.0, ["negative", "negative", "neutral"]))
    assert len(messages) == 1 and "67%" in messages[0] and "negative" in messages[0]
    assert monitor.update(_result(11.0, ["negative", "positive", "positive"])) == []  # dropped below: reset
    assert monitor.update(_result(12.0, ["negative", "negative"])) == []


def test_negative_alert_needs_a_share_above_its_threshold_of_faces_seen() -> None:
    monitor = AlertMonitor(AlertSettings(negative_share=0.5, negative_for_s=0.0, absent_count=3, absent_for_s=5.0))
    assert monitor.update(_result(0.0, ["negative", "neutral"])) == []  # 50% is not above 50%
    assert monitor.update(_result(1.0, [])) == []  # nobody seen: no share at all
    assert monitor.update(_result(2.0, ["negative", "negative", "neutral"])) != []


def test_with_default_settings_people_who_leave_raise_the_absence_alert() -> None:
    settings = Settings()
    tracker = Tracker(settings.tracking, settings.indicator.absent_after_s)
    monitor = AlertMonitor(settings.alerts)
    faces = [(40 + 120 * i, 100, 80, 80) for i in range(5)]
    for step in range(20):  # all five seen for 10 s, then all gone
        tracker.update(faces, step * 0.5)
    fired_at = None
    for step in range(20, 120):
        t = step * 0.5
        tracker.update([], t)
        result = FrameResult(step, t, datetime.now().astimezone(), (640, 480), (),
                             absent_ids=tuple(tracker.absent_ids(t)))
        if monitor.update(result) and fired_at is None:
            fired_at = t
    # Last seen at 9.5 s, absent from 14.5 s, the alert after 10 s more.
    assert fired_at == pytest.approx(24.5)


def test_absent_alert_needs_more_than_k_people_absent_for_its_time() -> None:
    monitor = AlertMonitor(AlertSettings(negative_share=1.0, negative_for_s=0.0, absent_count=3, absent_for_s=5.0))
    assert monitor.update(_result(0.0, ["neutral"], absent=3)) == []
    assert monitor.update(_result(10.0, ["neutral"], absent=3)) == []  # 3 is not more than 3
    assert monitor.update(_result(11.0, ["neutral"], absent=4)) == []
    messages = monitor.update(_result(16.0, ["neutral"], absent=4))
    assert messages == ["4 people have been absent for 5 s or more"]
