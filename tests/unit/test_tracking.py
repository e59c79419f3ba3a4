"""Tracker scenarios and the probability smoother."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fermonitor.core.settings import TrackingSettings
from fermonitor.core.tracking import ProbabilitySmoother, Tracker, centre_distance, iou

STEP_S = 0.5  # two analysis steps per second, the default rate


def run(tracker: Tracker, steps: list[list[tuple[int, int, int, int]]], t0: float = 0.0) -> list[dict[int, tuple]]:
    """Feed one box list per step; returns per step {person_id: box}."""
    return [dict(tracker.update(boxes, t0 + i * STEP_S)) for i, boxes in enumerate(steps)]


def test_box_geometry() -> None:
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert iou((0, 0, 10, 10), (20, 0, 10, 10)) == 0.0
    assert centre_distance((0, 0, 10, 10), (20, 0, 10, 10)) == pytest.approx(2.0)


def test_a_detection_becomes_a_person_after_min_hits_steps() -> None:
    tracker = Tracker(TrackingSettings(min_hits=2))
    steps = run(tracker, [[(100, 100, 80, 80)]] * 3)
    assert steps[0] == {}
    assert steps[1] == {1: (100, 100, 80, 80)}
    assert steps[2] == {1: (100, 100, 80, 80)}


def test_one_off_false_positive_never_becomes_a_person() -> None:
    tracker = Tracker(TrackingSettings(min_hits=2))
    face = (100, 100, 80, 80)
    collar = (400, 300, 40, 40)
    steps = run(tracker, [[face], [face, collar], [face], [face], [face, (40, 20, 30, 30)], [face]])
    assert all(set(step) <= {1} for step in steps)
    assert tracker.alive_ids() == [1]


def test_crossing_paths_keep_their_ids() -> None:
    tracker = Tracker(TrackingSettings())
    steps = []
    for k in range(16):
        a = (40 + 25 * k, 100, 80, 80)  # moves right
        b = (415 - 25 * k, 130, 80, 80)  # moves left, a little lower; they overlap mid-way
        steps.append([b, a] if k % 2 else [a, b])  # detector order says nothing
    result = run(tracker, steps)
    for k, step in enumerate(result[1:], start=1):
        assert step[1][0] == 40 + 25 * k, f"step {k}: id 1 jumped to the other face"
        assert step[2][0] == 415 - 25 * k, f"step {k}: id 2 jumped to the other face"


def test_leaving_and_returning_within_grace_keeps_the_id() -> None:
    settings = TrackingSettings(grace_s=3.0)
    tracker = Tracker(settings, absent_after_s=5.0)
    face = (200, 100, 80, 80)
    run(tracker, [[face]] * 4)  # confirmed as 1
    t_gone = 4 * STEP_S
    # Gone for 7 s (< 5 s absent + 3 s grace); absent from 5 s on.
    for i in range(14):
        t = t_gone + i * STEP_S
        assert tracker.update([], t) == []
        assert tracker.absent_ids(t) == ([1] if t - (t_gone - STEP_S) >= 5.0 else [])
    back = (210, 104, 78, 78)
    assert tracker.update([back], t_gone + 14 * STEP_S) == [(1, back)]
    assert tracker.absent_ids(t_gone + 14 * STEP_S) == []


def test_by_default_a_person_who_leaves_counts_as_absent_for_a_minute() -> None:
    tracker = Tracker(TrackingSettings(), absent_after_s=5.0)
    face = (200, 100, 80, 80)
    run(tracker, [[face]] * 3)  # last seen at 1.0 s
    assert tracker.absent_ids(1.0 + 4.9) == []
    for t in (6.0, 30.0, 64.5):
        tracker.update([], t)
        assert tracker.absent_ids(t) == [1], t
    tracker.update([], 66.5)  # unseen for more than 5 s + 60 s: the id has ended
    assert tracker.alive_ids() == []


def test_after_grace_a_returning_face_gets_a_new_id_and_ids_are_never_reused() -> None:
    tracker = Tracker(TrackingSettings(grace_s=1.0, min_hits=2), absent_after_s=2.0)
    face = (200, 100, 80, 80)
    run(tracker, [[face]] * 3)
    assert tracker.alive_ids() == [1]
    t = 3 * STEP_S
    while t <= 1.0 + 3.5:  # last seen at 1.0; the track ends once unseen for more than 2 + 1 s
        tracker.update([], t)
        t += STEP_S
    assert tracker.alive_ids() == []
    assert tracker.update([face], t) == []  # tentative again
    assert tracker.update([face], t + STEP_S) == [(2, face)]
    tracker.reset()
    tracker.update([face], 100.0)
    assert tracker.update([face], 100.5) == [(3, face)]


def test_small_gallery_reflow_keeps_ids() -> None:
    tracker = Tracker(TrackingSettings())
    side, gap = 100, 60
    tiles = [(gap + c * (side + gap), 50 + r * (side + gap), side, side) for r in range(3) for c in range(4)]
    before = run(tracker, [tiles] * 3)[-1]
    assert sorted(before) == list(range(1, 13))
    # The gallery shifts 40 px right and 20 px down and the tiles shrink a little.
    shifted = [(x + 40, y + 20, side - 8, side - 8) for x, y, _, _ in tiles]
    after = run(tracker, [shifted] * 2, t0=10 * STEP_S)[-1]
    by_box = {box: pid for pid, box in before.items()}
    for old, new in zip(tiles, shifted, strict=True):
        assert after[by_box[old]] == new


def test_gallery_reflow_with_one_tile_leaving() -> None:
    tracker = Tracker(TrackingSettings())
    tiles = [(20 + c * 160, 60, 100, 100) for c in range(4)]
    first = run(tracker, [tiles] * 2)[-1]
    remaining = [tiles[0], tiles[2], tiles[3]]
    moved = [(x + 15, y, w, h) for x, y, w, h in remaining]
    after = tracker.update(moved, 5.0)
    assert [pid for pid, _ in after] == [1, 3, 4]
    assert first[2] == tiles[1]
    assert 2 in tracker.alive_ids()


def test_distant_jump_is_a_new_person() -> None:
    tracker = Tracker(TrackingSettings())
    run(tracker, [[(50, 50, 80, 80)]] * 2)
    far = (600, 400, 80, 80)
    assert tracker.update([far], 1.0) == []  # tentative, not person 1
    assert tracker.update([far], 1.5) == [(2, far)]


def test_a_box_twice_as_wide_in_the_same_place_is_another_face() -> None:
    # e.g. a small face on a poster behind someone who leaves the frame: same centre, other size
    tracker = Tracker(TrackingSettings())
    run(tracker, [[(100, 100, 80, 80)]] * 2)
    twice = (60, 60, 161, 161)  # same centre, just over twice the width
    assert tracker.update([twice], 1.0) == []  # tentative: not person 1
    assert tracker.update([twice], 1.5) == [(2, twice)]
    within = Tracker(TrackingSettings())
    run(within, [[(100, 100, 80, 80)]] * 2)
    assert within.update([(70, 70, 140, 140)], 1.0) == [(1, (70, 70, 140, 140))]  # 1.75x: the same face


def test_a_tentative_face_missed_once_is_confirmed_but_missed_twice_is_dropped() -> None:
    face = (100, 100, 80, 80)
    once = run(Tracker(TrackingSettings(min_hits=2)), [[face], [], [face]])
    assert once[2] == {1: face}
    twice = Tracker(TrackingSettings(min_hits=2))
    assert run(twice, [[face], [], [], [face], [face]])[3:] == [{}, {1: face}]  # started again, then confirmed


def test_smoother_first_value_then_time_constant() -> None:
    smoother = ProbabilitySmoother(tau_s=1.0)
    a = np.array([1.0, 0.0])
    b = np.array([0.0, 1.0])
    np.testing.assert_allclose(smoother.update(7, a, 0.0), a)
    alpha = 1 - math.exp(-0.5)
    np.testing.assert_allclose(smoother.update(7, b, 0.5), [1 - alpha, alpha])
    # Independent per person.
    np.testing.assert_allclose(smoother.update(8, b, 0.5), b)


def test_smoother_does_not_depend_on_the_rate() -> None:
    coarse = ProbabilitySmoother(tau_s=1.5)
    fine = ProbabilitySmoother(tau_s=1.5)
    start, target = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    coarse.update(1, start, 0.0)
    fine.update(1, start, 0.0)
    for i in range(1, 3):
        out_coarse = coarse.update(1, target, i * 1.0)
    for i in range(1, 11):
        out_fine = fine.update(1, target, i * 0.2)
    np.testing.assert_allclose(out_coarse, out_fine, atol=1e-9)
    np.testing.assert_allclose(out_fine[1], 1 - math.exp(-2 / 1.5))


def test_smoother_forgets_and_zero_tau_passes_through() -> None:
    smoother = ProbabilitySmoother(tau_s=2.0)
    smoother.update(1, np.array([1.0, 0.0]), 0.0)
    smoother.keep_only([])
    np.testing.assert_allclose(smoother.update(1, np.array([0.0, 1.0]), 0.1), [0.0, 1.0])
    passthrough = ProbabilitySmoother(tau_s=0.0)
    passthrough.update(1, np.array([1.0, 0.0]), 0.0)
    np.testing.assert_allclose(passthrough.update(1, np.array([0.2, 0.8]), 0.1), [0.2, 0.8])
    with pytest.raises(ValueError, match="must not be negative"):
        ProbabilitySmoother(-1.0)


def test_a_box_inside_a_persons_face_never_becomes_a_person() -> None:
    """A chin or mouth taken for a face, beside the face or on its own for a step, gets no id."""
    from fermonitor.core.detection import Detection

    tracker = Tracker(TrackingSettings(min_hits=2))
    face = Detection((200, 100, 120, 150), 0.9, ((235, 150), (285, 150), (260, 180), (240, 210), (280, 210)))
    chin = Detection((225, 200, 70, 50), 0.7)
    steps = [[face], [face, chin], [face, chin], [chin], [face, chin], [face, chin], [face]]
    seen = [dict(tracker.track(step, i * STEP_S)) for i, step in enumerate(steps)]
    assert [sorted(s) for s in seen] == [[], [1], [1], [], [1], [1], [1]]
    assert tracker.alive_ids() == [1]
    # The same small box away from any face is a person like any other.
    elsewhere = Detection((600, 300, 70, 50), 0.7)
    tracker.track([face, elsewhere], 10 * STEP_S)
    assert [pid for pid, _ in tracker.track([face, elsewhere], 11 * STEP_S)] == [1, 2]

