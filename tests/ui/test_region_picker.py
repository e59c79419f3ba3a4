"""Dragging a rectangle over a screenshot picks a screen region (the video-call gallery)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from PySide6.QtCore import QPoint, Qt, QTimer
from PySide6.QtGui import QColor, QImage
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from fermonitor.ui import source_picker
from fermonitor.ui.region_picker import MIN_REGION_PX, RegionPicker

ORIGIN = (1920, 40)  # a second screen, right of the first: regions are in virtual-desktop pixels


def _screenshot() -> QImage:
    image = QImage(400, 300, QImage.Format.Format_RGB32)
    image.fill(QColor(30, 60, 90))
    return image


def _drag(widget: RegionPicker, start: QPoint, end: QPoint) -> None:
    QTest.mousePress(widget, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
    QTest.mouseMove(widget, (start + end) / 2)
    QTest.mouseRelease(widget, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, end)


@pytest.mark.parametrize(("start", "end"), [((10, 20), (110, 80)), ((110, 80), (10, 20))],
                         ids=["down-right", "up-left"])
def test_a_drag_picks_the_rectangle_in_desktop_pixels(qtbot, start: tuple[int, int], end: tuple[int, int]) -> None:
    picker = RegionPicker(_screenshot(), ORIGIN)
    qtbot.addWidget(picker)
    picker.show()
    qtbot.waitExposed(picker)
    with qtbot.waitSignal(picker.region_picked) as picked:
        _drag(picker, QPoint(*start), QPoint(*end))
    assert picked.args == [ORIGIN[0] + 10, ORIGIN[1] + 20, 100, 60]
    assert not picker.isVisible()


def test_on_a_screen_scaled_200_percent_the_drag_is_given_in_the_screen_pixels(qtbot) -> None:
    image = QImage(800, 600, QImage.Format.Format_RGB32)  # what the screen holds: twice the widget's pixels
    image.fill(QColor(30, 60, 90))
    image.setDevicePixelRatio(2.0)
    picker = RegionPicker(image, (3840, 80))
    qtbot.addWidget(picker)
    assert (picker.width(), picker.height()) == (400, 300)
    picker.show()
    qtbot.waitExposed(picker)
    with qtbot.waitSignal(picker.region_picked) as picked:
        _drag(picker, QPoint(100, 100), QPoint(300, 200))
    assert picked.args == [3840 + 200, 80 + 200, 400, 200]


def test_a_screenshot_of_a_scaled_screen_keeps_its_pixels_and_tells_the_scale() -> None:
    script = ("from PySide6.QtWidgets import QApplication; app = QApplication([]); "
              "from fermonitor.ui.source_picker import grab_screenshot; "
              "from fermonitor.ui.region_picker import RegionPicker; "
              "image, origin = grab_screenshot(); screen = app.primaryScreen().geometry(); "
              "picker = RegionPicker(image, origin); "
              "print(image.width(), image.devicePixelRatio(), screen.width(), picker.width())")
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "QT_SCALE_FACTOR": "2"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    image_px, ratio, screen_width, picker_width = done.stdout.split()[-4:]
    assert float(ratio) == 2.0 and int(image_px) == 2 * int(screen_width) == 2 * int(picker_width)


def test_a_click_or_tiny_drag_picks_nothing_and_the_user_can_drag_again(qtbot) -> None:
    picker = RegionPicker(_screenshot(), ORIGIN)
    qtbot.addWidget(picker)
    picker.show()
    qtbot.waitExposed(picker)
    with qtbot.assertNotEmitted(picker.region_picked):
        _drag(picker, QPoint(50, 50), QPoint(50 + MIN_REGION_PX - 1, 90))
    assert picker.isVisible() and picker.selection() is None
    with qtbot.waitSignal(picker.region_picked) as picked:
        _drag(picker, QPoint(50, 50), QPoint(50 + MIN_REGION_PX, 50 + MIN_REGION_PX))
    assert picked.args == [ORIGIN[0] + 50, ORIGIN[1] + 50, MIN_REGION_PX, MIN_REGION_PX]


def test_escape_cancels(qtbot) -> None:
    picker = RegionPicker(_screenshot(), ORIGIN)
    qtbot.addWidget(picker)
    picker.show()
    qtbot.waitExposed(picker)
    with qtbot.assertNotEmitted(picker.region_picked), qtbot.waitSignal(picker.cancelled):
        QTest.keyClick(picker, Qt.Key.Key_Escape)
    assert not picker.isVisible()


def _drag_on_the_open_picker(start: QPoint, end: QPoint) -> None:
    pickers = [w for w in QApplication.topLevelWidgets() if isinstance(w, RegionPicker) and w.isVisible()]
    assert len(pickers) == 1, pickers
    _drag(pickers[0], start, end)


def test_pick_region_returns_the_region_spec_the_sources_read(qtbot, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(source_picker, "grab_screenshot", lambda: (_screenshot(), ORIGIN))
    QTimer.singleShot(50, lambda: _drag_on_the_open_picker(QPoint(200, 100), QPoint(360, 220)))
    assert source_picker.pick_region() == f"region:{ORIGIN[0] + 200},{ORIGIN[1] + 100},160,120"


def test_pick_region_without_a_screenshot_returns_none(monkeypatch: pytest.MonkeyPatch, qtbot) -> None:
    monkeypatch.setattr(source_picker, "grab_screenshot", lambda: None)
    assert source_picker.pick_region() is None
