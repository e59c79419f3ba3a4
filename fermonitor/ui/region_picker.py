"""Pick a screen region (a video-call gallery) by dragging a rectangle over a screenshot."""

from __future__ import annotations

from PySide6.QtCore import QPoint, QRect, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QKeyEvent, QMouseEvent, QPainter, QPen
from PySide6.QtWidgets import QWidget

MIN_REGION_PX = 16


class RegionPicker(QWidget):
    """Shows a screenshot full size; the user drags a rectangle; ``region_picked`` carries it in the
    screenshot's pixels, offset by the screenshot's origin on the virtual desktop (``origin``, in
    those pixels too).

    On a scaled screen the screenshot's ``devicePixelRatio`` says how many of its pixels make one
    pixel of the widget: the widget is as large as the screen and the drag is scaled back to the
    screenshot's pixels, which are the ones screen capture reads. Escape cancels (``cancelled``).
    """

    region_picked = Signal(int, int, int, int)
    cancelled = Signal()

    def __init__(self, screenshot: QImage, origin: tuple[int, int] = (0, 0),
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Drag a rectangle over the region to analyse (Esc cancels)")
        self.setCursor(Qt.CursorShape.CrossCursor)
        self._screenshot = screenshot
        self._origin = origin
        self._start: QPoint | None = None
        self._end: QPoint | None = None
        self._ratio = screenshot.devicePixelRatio()
        self.setFixedSize(round(screenshot.width() / self._ratio), round(screenshot.height() / self._ratio))

    def selection(self) -> QRect | None:
        """The rectangle between the press and the pointer, as wide and high as the drag."""
        if self._start is None or self._end is None:
            return None
        left, right = sorted((self._start.x(), self._end.x()))
        top, bottom = sorted((self._start.y(), self._end.y()))
        return QRect(left, top, right - left, bottom - top)

    def _in_screenshot(self, rect: QRect) -> QRectF:
        """A rectangle of the widget in the screenshot's own pixels."""
        r = self._ratio
        return QRectF(rect.x() * r, rect.y() * r, rect.width() * r, rect.height() * r)

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt override)
        self._start = event.position().toPoint()
        self._end = self._start
        self.update()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt override)
        if self._start is not None:
            self._end = event.position().toPoint()
            self.update()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt override)
        if self._start is None:
            return
        self._end = event.position().toPoint()
        rect = self.selection()
        if rect is None or rect.width() < MIN_REGION_PX or rect.height() < MIN_REGION_PX:
            self._start = self._end = None
            self.update()
            return
        picked = self._in_screenshot(rect).toRect()
        self.region_picked.emit(picked.x() + self._origin[0], picked.y() + self._origin[1],
                                picked.width(), picked.height())
        self.close()

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 (Qt override)
        if event.key() == Qt.Key.Key_Escape:
            self.cancelled.emit()
            self.close()
            return
        super().keyPressEvent(event)

    def paintEvent(self, event: object) -> None:  # noqa: N802 (Qt override)
        painter = QPainter(self)
        painter.drawImage(0, 0, self._screenshot)
        painter.fillRect(self.rect(), QColor(0, 0, 0, 90))
        rect = self.selection()
        if rect is not None:
            painter.drawImage(QRectF(rect), self._screenshot, self._in_screenshot(rect))
            painter.setPen(QPen(QColor(255, 200, 0), 2))
            painter.drawRect(rect)
        painter.end()
