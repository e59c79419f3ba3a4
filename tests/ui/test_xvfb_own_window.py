"""One screen, a video call on it and fermonitor started on top of it (a real X server, 1920x1080,
the real app in its own process on Qt's X11 platform): the app moves out of the captured area or
switches to its compact view, and the call's faces are analysed, captured as a region or by title."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from shared_data import DATA_DIR
from ui_helpers import read_rows
from xvfb import running_xvfb

from fermonitor.core.detection import create_detector
from fermonitor.logging_setup import LOG_FILE_NAME

SCREEN = (1920, 1080)
CALL = (1280, 720)  # the call's gallery, at the screen's top-left corner
GRID = 4  # 4x4 tiles
RUN_S = 30


@pytest.fixture()
def xvfb_display() -> Iterator[str]:
    with running_xvfb(*SCREEN) as display:
        yield display


@pytest.fixture(scope="module")
def gallery() -> np.ndarray:
    """A 4x4 call gallery of 16 real FER faces that the default detector finds in their tiles."""
    fer = DATA_DIR / "fer2013.csv.gz"
    if not fer.is_file():
        pytest.skip(f"real FER2013 data not found at {fer}")
    from training.data import read_fer2013

    images, _, _ = read_fer2013(fer)
    tile_w, tile_h = CALL[0] // GRID, CALL[1] // GRID
    side = tile_h - 30
    detector = create_detector("yunet")
    image = np.full((CALL[1], CALL[0], 3), 45, np.uint8)
    placed = 0
    for face in images[:600]:
        tile = np.full((tile_h, tile_w, 3), 45, np.uint8)
        x0, y0 = (tile_w - side) // 2, (tile_h - side) // 2
        tile[y0:y0 + side, x0:x0 + side] = cv2.cvtColor(cv2.resize(face, (side, side)), cv2.COLOR_GRAY2BGR)
        if len(detector.detect(tile)) != 1:
            continue
        row, column = divmod(placed, GRID)
        image[row * tile_h:(row + 1) * tile_h, column * tile_w:(column + 1) * tile_w] = tile
        placed += 1
        if placed == GRID * GRID:
            return image
    pytest.fail("fewer than 16 of 600 real FER faces are found by the YuNet detector in a tile")


@pytest.mark.xvfb
@pytest.mark.parametrize("source", [f"region:0,0,{CALL[0]},{CALL[1]}", "window:gallery view"])
def test_the_app_started_on_top_of_a_call_moves_aside_and_analyses_the_call(
        tmp_path: Path, xvfb_display: str, show_on_x: object, gallery: np.ndarray, source: str) -> None:
    show_on_x(gallery, 0, 0, title="Meeting - Gallery View")  # type: ignore[operator]
    csv_path = tmp_path / "call.csv"
    env = {**os.environ, "DISPLAY": xvfb_display, "QT_QPA_PLATFORM": "xcb"}
    done = subprocess.run([sys.executable, "-m", "fermonitor", "--source", source, "--csv", str(csv_path),
                           "--exit-after", str(RUN_S)], env=env, capture_output=True, text=True, timeout=RUN_S + 120)
    log = (Path(os.environ["FERMONITOR_LOG_DIR"]) / LOG_FILE_NAME).read_text(encoding="utf-8")
    assert done.returncode == 0, done.stderr[-2000:] + log[-2000:]
    assert "Moved this window beside the captured area" in log or "Switched to the compact view" in log, log[-3000:]
    _, rows = read_rows(csv_path)
    tile_w, tile_h = CALL[0] // GRID, CALL[1] // GRID
    tiles = {(int(float(r["x"]) + float(r["w"]) / 2) // tile_w, int(float(r["y"]) + float(r["h"]) / 2) // tile_h)
             for r in rows}
    assert len(tiles) >= 12, f"rows for {len(tiles)} of 16 tiles"
