"""On a real X screen (Xvfb): capture a region showing real FER faces and analyse it in the window;
the source picker lists that screen."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ui_helpers import SESSION_TIMEOUT_MS, gallery_image, make_window, read_rows

from fermonitor.ui.source_picker import (
    NO_CAMERA_TEXT,
    REGION_ITEM,
    VIDEO_ITEM,
    SourcePicker,
    default_source_spec,
)

WINDOW_AT = (120, 90)  # where the faces window is placed on the X screen
MARGIN_PX = 20  # the captured region is this much larger than the window on each side


@pytest.mark.xvfb
def test_a_region_of_a_real_x_screen_showing_faces_is_analysed(
        qtbot: object, tmp_path: Path, ui_checkpoint: Path, detectable_faces: np.ndarray,
        xvfb_display: str, show_on_x: object, monkeypatch: pytest.MonkeyPatch) -> None:
    image = gallery_image(detectable_faces[:3])
    height, width = image.shape[:2]
    show_on_x(image, *WINDOW_AT)
    monkeypatch.setenv("DISPLAY", xvfb_display)  # mss opens the display named here, in the capture thread
    x, y = WINDOW_AT[0] - MARGIN_PX, WINDOW_AT[1] - MARGIN_PX
    spec = f"region:{x},{y},{width + 2 * MARGIN_PX},{height + 2 * MARGIN_PX}"
    window = make_window(qtbot, tmp_path, spec, ui_checkpoint)
    csv_path = tmp_path / "region.csv"
    assert window.start_session(csv_path)
    qtbot.waitUntil(lambda: len(window.store.person_ids()) >= 2 or not window.controller.running,
                    timeout=SESSION_TIMEOUT_MS)
    assert window.message() == "", window.message()
    assert window.stop_session()
    _, rows = read_rows(csv_path)
    assert len({row["person_id"] for row in rows}) >= 2
    for row in rows:  # boxes lie inside the captured region, around the shown faces
        bx, by, bw, bh = (int(row[k]) for k in ("x", "y", "w", "h"))
        assert 0 <= bx and bx + bw <= width + 2 * MARGIN_PX
        assert 0 <= by and by + bh <= height + 2 * MARGIN_PX


@pytest.mark.xvfb
def test_the_source_picker_lists_no_camera_and_the_real_screen_and_defaults_to_it(
        qtbot: object, xvfb_display: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if any(Path("/dev").glob("video*")):
        pytest.skip("this machine has a video device")
    monkeypatch.setenv("DISPLAY", xvfb_display)  # the screens are listed from this X server
    assert default_source_spec() == "screen:1"
    picker = SourcePicker("")
    qtbot.addWidget(picker)
    items = [(picker.combo.itemText(i), picker.combo.itemData(i)) for i in range(picker.combo.count())]
    assert items[0] == (NO_CAMERA_TEXT, None) and not picker.combo.model().item(0).isEnabled()
    assert items[1][1] == "screen:1" and "1024" in items[1][0]  # the fixture's 1024x768 screen
    assert [data for _, data in items[2:]] == [REGION_ITEM, VIDEO_ITEM]
    assert picker.combo.currentData() == "screen:1" and picker.note.text().startswith("No camera found")
    picker.on_ok_clicked()
    assert picker.spec == "screen:1"
