"""The class views' models: the people x time grid and the seat map, from scripted results."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pytest

from fermonitor.core.checkpoint import FERPLUS_CLASSES
from fermonitor.core.classview import NO_DATA, PresenceGrid, SeatBoard, seat_layout
from fermonitor.core.pipeline import INDICATORS
from fermonitor.core.results import FaceObservation, FrameResult

POSITIVE, NEUTRAL, NEGATIVE, ABSENT = (INDICATORS.index(n) for n in ("positive", "neutral", "negative", "absent"))


def face(pid: int, indicator: str, top: str = "neutral", box: tuple[int, int, int, int] = (0, 0, 50, 50)) -> FaceObservation:
    return FaceObservation(pid, box, tuple([1 / 8] * 8), top, 0.6, indicator)


def result(t: float, faces: list[FaceObservation], absent: tuple[int, ...] = ()) -> FrameResult:
    return FrameResult(int(t * 2), t, datetime.now(timezone.utc), (640, 360), tuple(faces), absent)


def test_the_grid_holds_each_persons_indicator_and_top_expression_per_bin() -> None:
    grid = PresenceGrid(FERPLUS_CLASSES, bin_s=1.0, columns=4)
    grid.add(result(0.0, [face(1, "positive", "happiness"), face(2, "negative", "anger")]))
    grid.add(result(1.0, [face(1, "neutral")], absent=(2,)))
    grid.add(result(2.5, [face(2, "negative", "sadness")]))
    assert grid.people() == [1, 2]
    # columns oldest first: bins -1 (never written), 0, 1, 2
    np.testing.assert_array_equal(grid.codes("indicator"), [[NO_DATA, POSITIVE, NEUTRAL, NO_DATA],
                                                            [NO_DATA, NEGATIVE, ABSENT, NEGATIVE]])
    happiness, anger, sadness = (FERPLUS_CLASSES.index(n) for n in ("happiness", "anger", "sadness"))
    assert grid.codes("expression")[1].tolist() == [NO_DATA, anger, NO_DATA, sadness]
    assert grid.codes("expression")[0, 1] == happiness
    assert grid.span_s() == (-1.0, 3.0)
    assert grid.shown_span_s() == (0.0, 3.0)  # from the first step on


def test_the_grid_wraps_and_forgets_people_gone_for_its_whole_span() -> None:
    grid = PresenceGrid(FERPLUS_CLASSES, bin_s=1.0, columns=3)
    grid.add(result(0.0, [face(1, "positive"), face(2, "neutral")]))
    for t in range(1, 5):
        grid.add(result(float(t), [face(2, "negative")]))
    assert grid.people() == [2]  # 1 was last seen in bin 0, outside bins 2-4
    np.testing.assert_array_equal(grid.codes(), [[NEGATIVE, NEGATIVE, NEGATIVE]])
    grid.add(result(9.0, [face(3, "positive")]))  # a gap longer than the span clears every bin
    assert grid.people() == [3]
    np.testing.assert_array_equal(grid.codes(), [[NO_DATA, NO_DATA, POSITIVE]])


def test_the_grids_work_follows_the_people_in_view_not_everyone_ever_seen() -> None:
    grid = PresenceGrid(FERPLUS_CLASSES, bin_s=1.0, columns=10)
    for t in range(200):  # 200 people, each on screen for 3 s, 3 at a time
        grid.add(result(float(t), [face(t // 3 * 3 + k, "neutral") for k in range(3)]))
    assert len(grid.people()) <= 3 * (10 // 3 + 2)


@pytest.mark.parametrize(("bin_s", "columns"), [(0.0, 10), (1.0, 0)])
def test_a_grid_needs_a_positive_span(bin_s: float, columns: int) -> None:
    with pytest.raises(ValueError, match="bin_s"):
        PresenceGrid(FERPLUS_CLASSES, bin_s=bin_s, columns=columns)


def test_seats_follow_a_5x5_gallery_with_a_missing_tile_and_jitter() -> None:
    rng = np.random.default_rng(0)
    faces = {}
    for row in range(5):
        for column in range(5):
            if (row, column) == (2, 3):
                continue  # a student with the camera off
            faces[row * 5 + column] = (100 + 250 * column + rng.uniform(-15, 15),
                                       70 + 140 * row + rng.uniform(-10, 10), 80.0)
    cells = seat_layout(faces)
    assert cells == {pid: (pid // 5, pid % 5) for pid in faces}


def test_two_faces_in_one_cell_sit_side_by_side() -> None:
    assert seat_layout({1: (100, 100, 80), 2: (110, 105, 80)}) == {1: (0, 0), 2: (0, 1)}
    assert seat_layout({}) == {}


def test_a_seat_shows_absent_then_goes() -> None:
    board = SeatBoard(keep_s=5.0)
    board.add(result(0.0, [face(1, "positive", "happiness", (10, 10, 40, 40)), face(2, "negative")]))
    assert board.seats[1].indicator == "positive" and board.seats[1].centre == (30.0, 30.0)
    board.add(result(1.0, [face(2, "negative")]))
    assert board.seats[1].indicator == "absent" and np.isnan(board.seats[1].levels[-1])
    assert list(board.seats[2].levels) == [0.0, 0.0]
    board.add(result(7.0, [face(2, "neutral")]))
    assert set(board.seats) == {2}
    assert board.layout() == {2: (0, 0)}
