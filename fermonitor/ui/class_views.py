"""Class views that show 25-50 people at one glance: a people x time heat-map and a seat map.

Both draw from the Qt-free models in :mod:`fermonitor.core.classview`, redraw only when a new
result arrived, and emit ``person_clicked`` so the window can open that person's timeline.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QMouseEvent, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QGridLayout, QLabel, QSizePolicy, QVBoxLayout, QWidget

from fermonitor.core.classview import PresenceGrid, SeatBoard
from fermonitor.core.pipeline import INDICATORS

INDICATOR_RGB = {"positive": (46, 204, 113), "neutral": (189, 195, 199), "negative": (231, 76, 60),
                 "absent": (52, 73, 94)}
EXPRESSION_RGB = ((158, 158, 158), (46, 204, 113), (241, 196, 15), (52, 152, 219), (231, 76, 60),
                  (142, 68, 173), (230, 126, 34), (121, 85, 72))
NO_DATA_RGB = (245, 245, 245)
HEATMAP_MODES = ("indicator", "expression")


def colour_table(mode: str, classes: tuple[str, ...]) -> np.ndarray:
    """uint8 (codes + 1, 3): row 0 is NO_DATA, row k + 1 the colour of code k."""
    if mode == "indicator":
        colours = [INDICATOR_RGB[name] for name in INDICATORS]
    else:
        colours = [EXPRESSION_RGB[i % len(EXPRESSION_RGB)] for i in range(len(classes))]
    return np.array([NO_DATA_RGB, *colours], np.uint8)


def legend_html(mode: str, classes: tuple[str, ...]) -> str:
    """A one-line colour key of the heat-map in ``mode``, as rich text."""
    names = [*INDICATORS] if mode == "indicator" else list(classes)
    table = colour_table(mode, classes)[1:]
    swatches = [f'<span style="color: rgb({r},{g},{b})">\u25a0</span>&nbsp;{name}'
                for name, (r, g, b) in zip(names, table.tolist(), strict=True)]
    return "&nbsp;&nbsp;".join([*swatches, '<span style="color: #bbb">\u25a1</span>&nbsp;no data'])


class HeatmapView(pg.PlotWidget):
    """One row per person (id or name), one column per time bin, coloured by indicator or top
    expression; light grey where a person has no step. Rows fill the height, however many."""

    person_clicked = Signal(int)

    def __init__(self, grid: PresenceGrid, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.grid = grid
        self.mode = "indicator"
        self.names: dict[int, str] = {}
        self.people: list[int] = []
        self._drawn_version = -1
        self.setBackground("w")
        self.setMouseEnabled(x=False, y=False)
        self.setMenuEnabled(False)
        self.hideButtons()
        self.image = pg.ImageItem(axisOrder="row-major")
        self.addItem(self.image)
        self.getPlotItem().invertY(True)
        self.getPlotItem().setLabel("bottom", "seconds")
        self.scene().sigMouseClicked.connect(self.on_scene_clicked)

    def set_mode(self, mode: str) -> None:
        if mode not in HEATMAP_MODES:
            raise ValueError(f"heat-map mode {mode!r} is not one of {', '.join(HEATMAP_MODES)}")
        self.mode = mode
        self._drawn_version = -1

    def set_names(self, names: dict[int, str]) -> None:
        self.names = dict(names)
        self._drawn_version = -1

    def refresh(self) -> None:
        """Draw the grid's newest state; nothing when it has not changed."""
        if self.grid.version == self._drawn_version:
            return
        self._drawn_version = self.grid.version
        codes = self.grid.codes(self.mode)
        self.people = self.grid.people()
        rgb = colour_table(self.mode, self.grid.classes)[codes.astype(np.int16) + 1]
        start, end = self.grid.span_s()
        if len(self.people) == 0:
            self.image.clear()
        else:
            self.image.setImage(rgb, autoLevels=False, levels=(0, 255))
            self.image.setRect(QRectF(start, 0, end - start, len(self.people)))
        self.setXRange(*self.grid.shown_span_s(), padding=0)
        self.setYRange(0, max(1, len(self.people)), padding=0)
        ticks = [(k + 0.5, self.names.get(p) or f"#{p}") for k, p in enumerate(self.people)]
        self.getPlotItem().getAxis("left").setTicks([ticks])

    def colour_at(self, person_id: int, column: int = -1) -> tuple[int, int, int]:
        """The colour drawn for ``person_id`` in ``column`` (default the newest)."""
        row = self.people.index(person_id)
        code = int(self.grid.codes(self.mode)[row, column])
        return tuple(int(v) for v in colour_table(self.mode, self.grid.classes)[code + 1])  # type: ignore[return-value]

    def person_at_row(self, y: float) -> int | None:
        row = math.floor(y)
        return self.people[row] if 0 <= row < len(self.people) else None

    def on_scene_clicked(self, event: object) -> None:
        if getattr(event, "button", lambda: None)() != Qt.MouseButton.LeftButton:
            return
        point = self.getPlotItem().vb.mapSceneToView(event.scenePos())  # type: ignore[attr-defined]
        person = self.person_at_row(point.y())
        if person is not None:
            self.person_clicked.emit(person)


class SeatTile(QWidget):
    """One person: coloured by the current indicator, with name, top expression and a sparkline."""

    clicked = Signal(int)

    def __init__(self, person_id: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.person_id = person_id
        self.name = f"#{person_id}"
        self.indicator = "absent"
        self.expression = ""
        self.levels: list[float] = []
        self.setMinimumSize(60, 40)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setToolTip("Click to open this person's timeline")

    def colour(self) -> QColor:
        return QColor(*INDICATOR_RGB.get(self.indicator, NO_DATA_RGB))

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt override)
        if event.button() == Qt.MouseButton.LeftButton:
            self.clicked.emit(self.person_id)
        super().mousePressEvent(event)

    def paintEvent(self, event: object) -> None:  # noqa: N802 (Qt override)
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        box = QRectF(self.rect()).adjusted(1, 1, -1, -1)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(self.colour())
        painter.drawRoundedRect(box, 4, 4)
        ink = QColor(255, 255, 255) if self.indicator in ("negative", "absent") else QColor(20, 20, 20)
        font = QFont()
        font.setPixelSize(max(9, min(14, int(box.height() / 5))))
        painter.setFont(font)
        painter.setPen(ink)
        line = painter.fontMetrics().height()
        text = painter.fontMetrics().elidedText(self.name, Qt.TextElideMode.ElideRight, int(box.width() - 6))
        painter.drawText(box.adjusted(4, 2, -2, 0), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop, text)
        detail = "absent" if self.indicator == "absent" else self.expression
        detail = painter.fontMetrics().elidedText(detail, Qt.TextElideMode.ElideRight, int(box.width() - 6))
        painter.drawText(box.adjusted(4, 2 + line, -2, 0), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop, detail)
        spark = box.adjusted(4, 2 + 2 * line, -4, -3)
        if spark.height() >= 6 and len(self.levels) > 1:
            self._paint_sparkline(painter, spark, ink)
        painter.end()

    def _paint_sparkline(self, painter: QPainter, area: QRectF, ink: QColor) -> None:
        path = QPainterPath()
        step = area.width() / max(1, len(self.levels) - 1)
        pen_down = False
        for k, level in enumerate(self.levels):
            if not math.isfinite(level):
                pen_down = False
                continue
            point = QPointF(area.left() + k * step, area.bottom() - level * area.height())
            if pen_down:
                path.lineTo(point)
            else:
                path.moveTo(point)
                pen_down = True
        painter.setPen(QPen(ink, 1.2))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawPath(path)


class SeatMap(QWidget):
    """A tile per person on screen, laid out as the faces are in the picture."""

    person_clicked = Signal(int)

    def __init__(self, board: SeatBoard, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.board = board
        self.names: dict[int, str] = {}
        self.tiles: dict[int, SeatTile] = {}
        self._placed: dict[int, tuple[int, int]] = {}
        self._drawn_version = -1
        self.empty_label = QLabel("Nobody on screen yet")
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.grid_layout = QGridLayout()
        self.grid_layout.setSpacing(4)
        layout = QVBoxLayout(self)
        layout.addWidget(self.empty_label)
        layout.addLayout(self.grid_layout, 1)

    def set_names(self, names: dict[int, str]) -> None:
        self.names = dict(names)
        self._drawn_version = -1

    def refresh(self) -> None:
        if self.board.version == self._drawn_version:
            return
        self._drawn_version = self.board.version
        cells = self.board.layout()
        for person_id in [p for p in self.tiles if p not in cells]:
            tile = self.tiles.pop(person_id)
            self.grid_layout.removeWidget(tile)
            tile.deleteLater()
            self._placed.pop(person_id, None)
        for person_id, cell in cells.items():
            tile = self.tiles.get(person_id)
            if tile is None:
                tile = self.tiles[person_id] = SeatTile(person_id)
                tile.clicked.connect(self.person_clicked)
            if self._placed.get(person_id) != cell:
                self.grid_layout.removeWidget(tile)
                self.grid_layout.addWidget(tile, *cell)
                self._placed[person_id] = cell
            seat = self.board.seats[person_id]
            tile.name = self.names.get(person_id) or f"#{person_id}"
            tile.indicator = seat.indicator
            tile.expression = f"{seat.top_expression} {seat.top_probability:.0%}"
            tile.levels = list(seat.levels)
            tile.update()
        self.empty_label.setVisible(not cells)
