"""The live picture: the newest captured frame with each person's box, id or name and top expression."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from fermonitor.core.results import Frame, FrameResult

INDICATOR_COLOURS: dict[str, QColor] = {
    "positive": QColor(60, 180, 90),
    "neutral": QColor(200, 200, 200),
    "negative": QColor(220, 80, 60),
}
FALLBACK_COLOUR = QColor(240, 200, 40)
# Label font: this share of the box's height on screen, within these pixel sizes.
LABEL_SHARE_OF_BOX = 0.16
LABEL_MIN_PX = 9
LABEL_MAX_PX = 14


def frame_to_qimage(image: np.ndarray) -> QImage:
    """A QImage that owns a copy of a BGR (or grey) uint8 frame."""
    image = np.ascontiguousarray(image)
    if image.ndim == 2:
        height, width = image.shape
        return QImage(image.data, width, height, image.strides[0], QImage.Format.Format_Grayscale8).copy()
    height, width = image.shape[:2]
    if image.shape[2] == 4:
        return QImage(image.data, width, height, image.strides[0], QImage.Format.Format_ARGB32).copy()
    return QImage(image.data, width, height, image.strides[0], QImage.Format.Format_BGR888).copy()


class VideoView(QWidget):
    """Paints the latest frame and the latest analysis result; :meth:`refresh` is called by the
    window's repaint timer, so a fast source never paints faster than the screen needs."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumSize(320, 180)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self._frame: Frame | None = None
        self._image: QImage | None = None
        self._result: FrameResult | None = None
        self._names: dict[int, str] = {}
        self._dirty = False
        self._message = "No source"

    @property
    def shown_frame_index(self) -> int | None:
        return None if self._frame is None else self._frame.index

    def set_frame(self, frame: Frame) -> None:
        """Keep the newest frame; it is converted only when painted."""
        self._frame = frame
        self._dirty = True

    def set_result(self, result: FrameResult, names: dict[int, str]) -> None:
        self._result = result
        self._names = dict(names)
        self._dirty = True

    def set_message(self, message: str) -> None:
        """Text shown when there is no picture (no source yet, source ended)."""
        self._message = message
        self.update()

    def clear(self) -> None:
        self._frame = None
        self._image = None
        self._result = None
        self._dirty = False
        self.update()

    def refresh(self) -> None:
        """Repaint if something new arrived and the widget can be seen."""
        if not self._dirty or not self.isVisible():
            return
        self._dirty = False
        if self._frame is not None:
            self._image = frame_to_qimage(self._frame.image)
        self.update()

    def label_for(self, person_id: int) -> str:
        return self._names.get(person_id) or f"#{person_id}"

    def paintEvent(self, event: object) -> None:  # noqa: N802 (Qt override)
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(20, 20, 20))
        if self._image is None:
            painter.setPen(QColor(180, 180, 180))
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, self._message)
            painter.end()
            return
        img_w, img_h = self._image.width(), self._image.height()
        scale = min(self.width() / img_w, self.height() / img_h)
        target = QRectF((self.width() - img_w * scale) / 2, (self.height() - img_h * scale) / 2,
                        img_w * scale, img_h * scale)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        painter.drawImage(target, self._image)
        if self._result is not None:
            self._paint_faces(painter, target, scale)
        painter.end()

    def _paint_faces(self, painter: QPainter, target: QRectF, scale: float) -> None:
        rects = [QRectF(target.left() + x * scale, target.top() + y * scale, w * scale, h * scale)
                 for x, y, w, h in (face.box for face in self._result.faces)]
        for k, face in enumerate(self._result.faces):
            colour = INDICATOR_COLOURS.get(face.indicator, FALLBACK_COLOUR)
            rect = rects[k]
            painter.setPen(QPen(colour, 2))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRect(rect)
            others = rects[:k] + rects[k + 1:]
            text, label = face_label(painter, rect, others, target, self.label_for(face.person_id),
                                     f"{face.top_expression} {face.top_probability:.0%}")
            painter.fillRect(label, QColor(0, 0, 0, 170))
            painter.setPen(colour)
            painter.drawText(label.adjusted(2, 0, 0, 0), Qt.AlignmentFlag.AlignVCenter, text)


def face_label(painter: QPainter, box: QRectF, others: list[QRectF], target: QRectF, name: str,
               expression: str) -> tuple[str, QRectF]:
    """The label of one face and where it goes: as wide as the box at most (id and expression, else
    the id alone, elided if need be), in a font sized to the box, above the box unless that would
    cover another face or leave the picture, else inside the box's top."""
    font = QFont()
    font.setPixelSize(int(min(LABEL_MAX_PX, max(LABEL_MIN_PX, box.height() * LABEL_SHARE_OF_BOX))))
    painter.setFont(font)
    metrics = painter.fontMetrics()
    room = max(1.0, box.width() - 4)
    text = next((t for t in (f"{name}  {expression}", name) if metrics.horizontalAdvance(t) <= room),
                metrics.elidedText(name, Qt.TextElideMode.ElideRight, int(room)))
    width, height = min(box.width(), metrics.horizontalAdvance(text) + 4.0), metrics.height() + 2.0
    above = QRectF(box.left(), box.top() - height, width, height)
    if above.top() >= target.top() and not any(above.intersects(other) for other in others):
        return text, above
    return text, QRectF(box.left(), box.top(), width, height)
