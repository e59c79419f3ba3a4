"""Windows by title and where a window can go beside a captured area."""

from __future__ import annotations

import numpy as np
import pytest

from fermonitor.core.sources import blank, intersect
from fermonitor.core.windows import WindowError, WindowInfo, find_window, place_beside

SCREEN = [(0, 0, 1920, 1080)]


def test_find_window_matches_part_of_the_title_ignoring_case() -> None:
    windows = [WindowInfo("Terminal", 0, 0, 10, 10, 1), WindowInfo("Zoom Meeting", 5, 5, 640, 360, 2)]
    assert find_window(windows, "zoom").handle == 2
    with pytest.raises(WindowError, match=r"^no open window's title contains 'Teams'; open windows: "
                                          r"'Terminal', 'Zoom Meeting'$"):
        find_window(windows, "Teams")
    with pytest.raises(WindowError, match="open windows: none"):
        find_window([], "Zoom")


def test_a_window_goes_right_of_the_area_when_there_is_room() -> None:
    assert place_beside((0, 0, 1280, 720), (600, 700), SCREEN) == (1280, 0)


def test_a_window_goes_below_when_the_sides_are_full() -> None:
    assert place_beside((0, 0, 1600, 700), (1280, 380), SCREEN) == (0, 700)


def test_a_window_goes_left_of_an_area_on_the_right() -> None:
    assert place_beside((1000, 100, 920, 900), (900, 700), SCREEN) == (100, 100)


def test_no_room_anywhere_is_none() -> None:
    assert place_beside((0, 0, 1920, 1080), (360, 330), SCREEN) is None
    assert place_beside((0, 0, 1280, 720), (700, 800), SCREEN) is None


def test_a_second_screen_is_used_when_the_first_is_full() -> None:
    assert place_beside((0, 0, 1920, 1080), (800, 600), SCREEN + [(1920, 0, 1280, 1024)]) == (1920, 0)


def test_blanking_covers_exactly_the_overlap() -> None:
    image = np.full((100, 200, 3), 255, np.uint8)  # shows the screen area (50, 20, 200, 100)
    pixels = blank(image, (50, 20, 200, 100), ((0, 0, 100, 60), (400, 400, 10, 10)))
    assert pixels == 50 * 40
    assert (image[:40, :50] == 0).all() and (image[40:, :] == 255).all() and (image[:, 50:] == 255).all()
    assert intersect((0, 0, 10, 10), (10, 0, 5, 5)) is None
