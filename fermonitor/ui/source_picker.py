"""Choose what to analyse: a webcam, a screen, a window by title, a region dragged over a screenshot, or a video file."""

from __future__ import annotations

import logging

from PySide6.QtCore import QEventLoop, Qt, Slot
from PySide6.QtGui import QGuiApplication, QImage
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QLabel,
    QVBoxLayout,
    QWidget,
)

from fermonitor.core.sources import list_cameras, list_screens
from fermonitor.core.windows import list_windows
from fermonitor.ui.region_picker import RegionPicker

log = logging.getLogger(__name__)

NO_CAMERA_TEXT = "no camera found"
REGION_ITEM = "region"
VIDEO_ITEM = "video"
VIDEO_FILTER = "Videos (*.mp4 *.avi *.mkv *.mov *.webm *.m4v);;All files (*)"


def default_source_spec() -> str:
    """The first webcam when there is one, else the primary screen."""
    cameras = list_cameras()
    if cameras:
        return f"webcam:{cameras[0]}"
    return "screen:1"


def grab_screenshot() -> tuple[QImage, tuple[int, int]] | None:
    """A screenshot of the primary screen and its origin on the virtual desktop, both in the
    screen's own pixels, which screen capture reads (None: not possible).

    On a scaled screen (125%, 200%) Qt gives the screen's size in scaled units but keeps its
    top-left corner in the screen's own pixels; the image's ``devicePixelRatio`` is set to the
    scale, so :class:`RegionPicker` can map a drag back.
    """
    screen = QGuiApplication.primaryScreen()
    if screen is None:
        return None
    image = screen.grabWindow(0).toImage()
    geometry = screen.geometry()
    if image.isNull() or geometry.width() <= 0:
        return None
    ratio = image.width() / geometry.width()
    image.setDevicePixelRatio(ratio)
    return image, (geometry.x(), geometry.y())


def pick_region(parent: QWidget | None = None) -> str | None:
    """Let the user drag a rectangle over a screenshot; a ``region:`` spec, or None if cancelled."""
    shot = grab_screenshot()
    if shot is None:
        log.warning("no screenshot could be taken to pick a region from")
        return None
    image, origin = shot
    picker = RegionPicker(image, origin)
    picked: list[str] = []
    loop = QEventLoop()
    picker.region_picked.connect(lambda x, y, w, h: picked.append(f"region:{x},{y},{w},{h}"))
    picker.region_picked.connect(loop.quit)
    picker.cancelled.connect(loop.quit)
    picker.destroyed.connect(loop.quit)
    picker.showFullScreen()
    loop.exec()
    return picked[0] if picked else None


def own_window_ids() -> set[int]:
    """The native ids of this app's top-level windows (never offered as a source)."""
    return {int(w.winId()) for w in QApplication.topLevelWidgets() if w.isWindow() and w.testAttribute(
        Qt.WidgetAttribute.WA_WState_Created)}


class SourcePicker(QDialog):
    """Lists the cameras found (or "no camera found"), the screens, the open windows by title, a
    region and a video file."""

    def __init__(self, current_spec: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Choose a source")
        self.combo = QComboBox()
        cameras = list_cameras()
        for index in cameras:
            self.combo.addItem(f"Webcam {index}", f"webcam:{index}")
        if not cameras:
            self.combo.addItem(NO_CAMERA_TEXT, None)
            self.combo.model().item(0).setEnabled(False)
        for screen in list_screens():
            self.combo.addItem(screen.label().capitalize(), f"screen:{screen.index}")
        ours = own_window_ids()
        for window in list_windows():
            if window.handle not in ours:
                self.combo.addItem(f"Window: {window.title} ({window.width}x{window.height})", f"window:{window.title}")
        self.combo.addItem("A region of the screen (drag a rectangle)\u2026", REGION_ITEM)
        self.combo.addItem("A video file\u2026", VIDEO_ITEM)
        found = self.combo.findData(current_spec)
        if found >= 0:
            self.combo.setCurrentIndex(found)
        elif not cameras and self.combo.count() > 1:
            self.combo.setCurrentIndex(1)
        self.note = QLabel("" if cameras else "No camera found: pick a screen, a region or a video file.")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.on_ok_clicked)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.combo)
        layout.addWidget(self.note)
        layout.addWidget(buttons)
        self.spec: str | None = None

    @Slot()
    def on_ok_clicked(self) -> None:
        choice = self.combo.currentData()
        if choice == REGION_ITEM:
            self.hide()
            self.spec = pick_region(self.parentWidget())
        elif choice == VIDEO_ITEM:
            path, _ = QFileDialog.getOpenFileName(self, "Choose a video", "", VIDEO_FILTER)
            self.spec = f"video:{path}" if path else None
        else:
            self.spec = choice
        if self.spec:
            self.accept()
        else:
            self.reject()


def choose_source(parent: QWidget | None = None, current_spec: str = "") -> str | None:
    """Run the picker; the chosen spec or None."""
    dialog = SourcePicker(current_spec, parent)
    if dialog.exec() == QDialog.DialogCode.Accepted:
        return dialog.spec
    return None
