"""The class view: the class chart on top, then a people x time heat-map, a seat map or a
timeline row per person, one tab each.

Curves are created once per row and updated with ``setData`` from a ``TimelineStore`` when the
window's repaint timer calls :meth:`TimelineWidget.refresh`; only the tab in view is redrawn, and
person rows only while their tab is open.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPoint, QSize, Qt, Signal, Slot
from PySide6.QtGui import QAction, QMouseEvent
from PySide6.QtWidgets import (
    QComboBox,
    QFrame,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QMenu,
    QScrollArea,
    QSpinBox,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from fermonitor.core.classview import PresenceGrid, SeatBoard
from fermonitor.core.pipeline import INDICATORS
from fermonitor.core.results import FrameResult
from fermonitor.core.timeline import TimelineStore
from fermonitor.ui.class_views import HEATMAP_MODES, HeatmapView, SeatMap, legend_html

EXPRESSION_COLOURS = ("#9e9e9e", "#2ecc71", "#f1c40f", "#3498db", "#e74c3c", "#8e44ad", "#e67e22", "#795548")
INDICATOR_COLOURS = {"positive": "#2ecc71", "neutral": "#9e9e9e", "negative": "#e74c3c", "absent": "#34495e"}
# Height of a person's plot on the indicator scale: positive up, negative down, absent a gap.
INDICATOR_LEVELS = {"positive": 1.0, "neutral": 0.5, "negative": 0.0, "absent": math.nan}
ROW_HEIGHT_PX = 90
ENLARGED_ROW_HEIGHT_PX = 260
CLASS_ROW_HEIGHT_PX = 150
FACES_ROW_HEIGHT_PX = 70
FACES_AXIS_HEADROOM = 1.15  # the face-count axis reaches this much above the highest count in view
DEFAULT_WINDOW_MIN = 3
MAX_WINDOW_MIN = 60
MODES = ("expressions", "indicator")
MAX_SPARE_PLOTS = 20  # plots of rows gone kept for the next rows
INDICATOR_LEVEL_VALUES = np.array([INDICATOR_LEVELS[name] for name in INDICATORS])


def _configure_plot(plot: pg.PlotWidget, y_range: tuple[float, float] | None) -> None:
    plot.setBackground("w")
    plot.setMouseEnabled(x=False, y=False)
    plot.setMenuEnabled(False)
    plot.hideButtons()
    plot.showGrid(x=True, y=True, alpha=0.2)
    if y_range is not None:
        plot.setYRange(*y_range, padding=0.02)


class CountAxis(pg.AxisItem):
    """A left axis for a count: whole-number ticks from 0 and no SI prefix (pyqtgraph would label a
    flat 0 as -200..200 with "x0.001")."""

    def __init__(self) -> None:
        super().__init__("left")
        self.enableAutoSIPrefix(False)

    def tickValues(self, minVal: float, maxVal: float, size: float) -> list:  # noqa: N802,N803 (pyqtgraph override)
        levels = [(spacing, [v for v in values if v >= 0 and float(v).is_integer()])
                  for spacing, values in super().tickValues(minVal, maxVal, size) if spacing >= 1]
        if not levels:  # a range under 2: every whole number in it
            levels = [(1.0, [float(v) for v in range(max(0, math.ceil(minVal)), math.floor(maxVal) + 1)])]
        return levels

    def tickStrings(self, values: list[float], scale: float, spacing: float) -> list[str]:  # noqa: N802
        return [str(round(v)) for v in values]


def faces_axis_top(peak: float) -> float:
    """The top of the face-count axis for a peak count: room above it, at least 1."""
    return max(1.0, float(peak)) * FACES_AXIS_HEADROOM


def _curve(plot: pg.PlotWidget, colour: str, name: str | None = None) -> pg.PlotDataItem:
    """A curve drawn only where it is in view, downsampled on long series."""
    item = plot.plot([], [], pen=pg.mkPen(colour, width=1.5), name=name, connect="finite")
    item.setClipToView(True)
    item.setDownsampling(auto=True, method="peak")
    return item


class RowPlot(pg.PlotWidget):
    """The curves of a person's row; reused by the next person's row when one leaves."""

    clicked = Signal()

    def __init__(self, classes: tuple[str, ...]) -> None:
        super().__init__()
        _configure_plot(self, (-0.05, 1.05))
        self.expression_curves = [_curve(self, EXPRESSION_COLOURS[i % len(EXPRESSION_COLOURS)], name)
                                  for i, name in enumerate(classes)]
        self.indicator_curve = _curve(self, "#2c3e50", "indicator")
        self.scene().sigMouseClicked.connect(self.on_scene_clicked)

    def clear_curves(self) -> None:
        for curve in (*self.expression_curves, self.indicator_curve):
            curve.setData([], [])

    @Slot(object)
    def on_scene_clicked(self, event: object) -> None:
        if getattr(event, "button", lambda: None)() == Qt.MouseButton.LeftButton:
            self.clicked.emit()


class PersonRow(QFrame):
    """One person's timeline: name, and either eight expression curves or the indicator curve.

    The plot comes the first time the row scrolls into view (``ensure_plot``), from the plots of
    rows that left when there is one: a row costs a label until then, however many people a
    session holds, and people coming and going make no new plots.
    """

    clicked = Signal(int)
    rename_requested = Signal(int)
    hide_requested = Signal(int)

    def __init__(self, person_id: int, classes: tuple[str, ...], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.person_id = person_id
        self.classes = classes
        self.enlarged = False
        self.mode = MODES[0]
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.name_label = QLabel(f"#{person_id}")
        self.name_label.setMinimumWidth(80)
        self.name_label.setToolTip("Click the row to enlarge it; right-click to rename or hide")
        self.plot: RowPlot | None = None
        self.row_layout = QHBoxLayout(self)
        self.row_layout.setContentsMargins(2, 2, 2, 2)
        self.row_layout.addWidget(self.name_label)
        self.row_layout.addStretch(1)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.customContextMenuRequested.connect(self.on_context_menu_requested)
        self.set_enlarged(False)
        self.shown_points = 0
        self.drawn: tuple[float | None, str, float] | None = None  # (person's newest t, mode, window) drawn
        self.x_range: tuple[float, float] | None = None

    @property
    def expression_curves(self) -> list[pg.PlotDataItem]:
        return self.plot.expression_curves if self.plot is not None else []

    @property
    def indicator_curve(self) -> pg.PlotDataItem | None:
        return self.plot.indicator_curve if self.plot is not None else None

    def ensure_plot(self, spare: list[RowPlot]) -> RowPlot:
        """The row's plot, taken from ``spare`` (plots of rows gone) or made."""
        if self.plot is None:
            self.plot = spare.pop() if spare else RowPlot(self.classes)
            self.row_layout.takeAt(1)  # the stretch that held the place
            self.row_layout.addWidget(self.plot, 1)
            self.plot.clicked.connect(self.on_plot_clicked)
            self.set_mode(self.mode)
            self.set_enlarged(self.enlarged)
            self.x_range = None
        return self.plot

    def release_plot(self) -> RowPlot | None:
        """Take the plot out of the row, emptied, for another row to use."""
        plot, self.plot = self.plot, None
        if plot is not None:
            plot.clicked.disconnect(self.on_plot_clicked)
            plot.setParent(None)
            plot.clear_curves()
        return plot

    def show_x_range(self, x_range: tuple[float, float]) -> None:
        if x_range != self.x_range and self.plot is not None:
            self.x_range = x_range
            self.plot.setXRange(*x_range, padding=0)

    def set_name(self, name: str) -> None:
        self.name_label.setText(name or f"#{self.person_id}")

    def set_enlarged(self, enlarged: bool) -> None:
        self.enlarged = enlarged
        self.setFixedHeight(ENLARGED_ROW_HEIGHT_PX if enlarged else ROW_HEIGHT_PX)
        if self.plot is not None:
            self.plot.getPlotItem().showAxis("bottom", enlarged)

    def set_mode(self, mode: str) -> None:
        self.mode = mode
        for curve in self.expression_curves:
            curve.setVisible(mode == "expressions")
        if self.indicator_curve is not None:
            self.indicator_curve.setVisible(mode == "indicator")

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt override)
        if event.button() == Qt.MouseButton.LeftButton:
            self.clicked.emit(self.person_id)
        super().mousePressEvent(event)

    @Slot()
    def on_plot_clicked(self) -> None:
        self.clicked.emit(self.person_id)

    @Slot(QPoint)
    def on_context_menu_requested(self, position: QPoint) -> None:
        menu = QMenu(self)
        rename = menu.addAction("Rename\u2026")
        hide = menu.addAction("Hide")
        chosen = menu.exec(self.mapToGlobal(position))
        if chosen is rename:
            self.rename_requested.emit(self.person_id)
        elif chosen is hide:
            self.hide_requested.emit(self.person_id)


class TimelineWidget(QWidget):
    """The class row and a scrolling row per person over the last ``window`` minutes."""

    person_renamed = Signal(int, str)
    person_visibility_changed = Signal(int, bool)

    def __init__(self, classes: tuple[str, ...], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.classes = tuple(classes)
        self.mode = "expressions"
        self.window_s = DEFAULT_WINDOW_MIN * 60.0
        self.rows: dict[int, PersonRow] = {}
        self.hidden: set[int] = set()
        self.names: dict[int, str] = {}
        self._shown_steps: tuple[int, int] | None = None

        self.mode_combo = QComboBox()
        self.mode_combo.addItems(["Expression probabilities", "Indicator"])
        self.mode_combo.currentIndexChanged.connect(self.on_mode_combo_changed)
        self.window_spin = QSpinBox()
        self.window_spin.setRange(1, MAX_WINDOW_MIN)
        self.window_spin.setValue(DEFAULT_WINDOW_MIN)
        self.window_spin.setSuffix(" min")
        self.window_spin.valueChanged.connect(self.on_window_spin_changed)
        self.people_button = QToolButton()
        self.people_button.setText("People")
        self.people_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.people_menu = QMenu(self.people_button)
        self.people_menu.aboutToShow.connect(self.on_people_menu_about_to_show)
        self.people_button.setMenu(self.people_menu)
        controls = QHBoxLayout()
        controls.addWidget(QLabel("Show"))
        controls.addWidget(self.mode_combo)
        controls.addWidget(QLabel("over the last"))
        controls.addWidget(self.window_spin)
        controls.addStretch(1)
        controls.addWidget(self.people_button)

        self.class_panel = QWidget()
        class_layout = QVBoxLayout(self.class_panel)
        class_layout.setContentsMargins(0, 0, 0, 0)
        class_layout.setSpacing(0)
        self.class_plot = pg.PlotWidget(title="Class: share of faces")
        _configure_plot(self.class_plot, (-0.02, 1.02))
        self.class_plot.setFixedHeight(CLASS_ROW_HEIGHT_PX)
        self.class_plot.addLegend(offset=(-5, 5), labelTextSize="7pt", colCount=4)
        self.class_expression_curves = [_curve(self.class_plot, EXPRESSION_COLOURS[i % len(EXPRESSION_COLOURS)], name)
                                        for i, name in enumerate(self.classes)]
        self.class_indicator_curves = [_curve(self.class_plot, INDICATOR_COLOURS[name], name) for name in INDICATORS]
        self.faces_plot = pg.PlotWidget(axisItems={"left": CountAxis()})
        _configure_plot(self.faces_plot, None)
        self.faces_plot.setYRange(0.0, faces_axis_top(0), padding=0)  # a count starts at 0, before any face too
        self.faces_plot.setFixedHeight(FACES_ROW_HEIGHT_PX)
        self.faces_plot.setLabel("left", "faces")
        self.faces_curve = _curve(self.faces_plot, "#2c3e50")
        self.faces_plot.setXLink(self.class_plot)
        class_layout.addWidget(self.class_plot)
        class_layout.addWidget(self.faces_plot)

        self.rows_container = QWidget()
        self.rows_layout = QVBoxLayout(self.rows_container)
        self.rows_layout.setContentsMargins(0, 0, 0, 0)
        self.rows_layout.addStretch(1)
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setWidget(self.rows_container)
        self.scroll.verticalScrollBar().valueChanged.connect(self.on_rows_scrolled)
        self._store: TimelineStore | None = None
        self._spare_plots: list[RowPlot] = []
        self._since = 0.0
        self._x_range: tuple[float, float] | None = None

        self.grid = PresenceGrid(self.classes)
        self.board = SeatBoard()
        self.heatmap = HeatmapView(self.grid)
        self.heatmap.person_clicked.connect(self.show_person)
        self.heatmap_mode_combo = QComboBox()
        self.heatmap_mode_combo.addItems(["Colour: indicator", "Colour: top expression"])
        self.heatmap_mode_combo.currentIndexChanged.connect(self.on_heatmap_mode_combo_changed)
        heatmap_page = QWidget()
        heatmap_layout = QVBoxLayout(heatmap_page)
        heatmap_layout.setContentsMargins(0, 0, 0, 0)
        self.heatmap_legend = QLabel(legend_html("indicator", self.classes))
        self.heatmap_legend.setTextFormat(Qt.TextFormat.RichText)
        heatmap_bar = QHBoxLayout()
        heatmap_bar.addWidget(self.heatmap_mode_combo)
        heatmap_bar.addWidget(self.heatmap_legend, 1)
        heatmap_layout.addLayout(heatmap_bar)
        heatmap_layout.addWidget(self.heatmap, 1)
        self.seat_map = SeatMap(self.board)
        self.seat_map.person_clicked.connect(self.show_person)
        self.tabs = QTabWidget()
        self.tabs.addTab(heatmap_page, "Heat-map")
        self.tabs.addTab(self.seat_map, "Seats")
        self.tabs.addTab(self.scroll, "Timelines")
        self.tabs.currentChanged.connect(self.on_tabs_current_changed)

        layout = QVBoxLayout(self)
        layout.addLayout(controls)
        layout.addWidget(self.class_panel)
        layout.addWidget(self.tabs, 1)
        self._apply_mode()

    def visible_people(self) -> list[int]:
        return [pid for pid in self.rows if pid not in self.hidden]

    def reset(self) -> None:
        """Remove every person row (a new session)."""
        for pid in list(self.rows):
            self._remove_row(pid)
        self._store, self._x_range = None, None
        self.hidden.clear()
        self.names.clear()
        self._shown_steps = None
        self.grid = self.heatmap.grid = PresenceGrid(self.classes)
        self.board = self.seat_map.board = SeatBoard()
        self.heatmap.set_names({})
        self.seat_map.set_names({})
        self.heatmap.refresh()
        self.seat_map.refresh()
        for curve in (*self.class_expression_curves, *self.class_indicator_curves, self.faces_curve):
            curve.setData([], [])
        self.faces_plot.setYRange(0.0, faces_axis_top(0), padding=0)

    def add_result(self, result: FrameResult) -> None:
        """Feed one analysis step to the heat-map and the seat map (drawn at the next refresh)."""
        self.grid.add(result)
        self.board.add(result)

    def refresh(self, store: TimelineStore, force: bool = False) -> None:
        """Pull new data into the class chart and the tab in view; nothing when hidden or unchanged."""
        if not self.isVisible() and not force:
            return
        current = self.tabs.currentIndex()
        if current == 0 or force:
            self.heatmap.refresh()
        if current == 1 or force:
            self.seat_map.refresh()
        # Keyed on the store's version, not its length: a full store keeps its length while it moves on.
        if (id(store), store.version) == self._shown_steps and not force:
            if self.tabs.currentWidget() is self.scroll:
                self.update_rows_in_view()  # rows that came into view by a resize or an enlarged row
            return
        self._shown_steps = (id(store), store.version)
        if store.last_t is None:
            return
        # Only the steps inside the visible window are copied and drawn, however long the session.
        since = store.last_t - self.window_s
        series = store.class_series(since)
        for i, curve in enumerate(self.class_expression_curves):
            curve.setData(series.t, series.expression_shares[:, i])
        for i, curve in enumerate(self.class_indicator_curves):
            curve.setData(series.t, series.indicator_shares[:, i])
        self.faces_curve.setData(series.t, series.faces_visible.astype(np.float64))
        self.faces_plot.setYRange(0.0, faces_axis_top(series.faces_visible.max(initial=0)), padding=0)
        t_end = float(series.t[-1])
        t_start = max(float(series.t[0]), t_end - self.window_s)
        x_range = (t_start, max(t_end, t_start + 1.0))
        self.class_plot.setXRange(*x_range, padding=0)
        if self.tabs.currentWidget() is not self.scroll and not force:
            return  # the rows catch up when their tab opens (on_tabs_current_changed)
        self._store, self._since, self._x_range = store, since, x_range
        live = store.person_ids()
        for pid in set(self.rows) - set(live):
            self._remove_row(pid)  # gone for longer than the store keeps people
        for pid in live:
            if pid not in self.rows:
                self._add_row(pid)
        self.place_rows()
        self.update_rows_in_view(force)

    def place_rows(self) -> None:
        """Lay the rows out now (Qt would at the next event), to know which of them are in view."""
        viewport = self.scroll.viewport()
        height = max(viewport.height(), self.rows_layout.sizeHint().height())
        if self.rows_container.size() != QSize(viewport.width(), height):
            self.rows_container.resize(viewport.width(), height)
        self.rows_layout.activate()

    @Slot(int)
    def on_rows_scrolled(self, _value: int) -> None:
        self.update_rows_in_view()

    def update_rows_in_view(self, force: bool = False) -> None:
        """Draw the rows in view: new steps of their person, the time axis slid; the others catch up
        when they scroll into view, so a tick costs what is visible, however many people are listed."""
        if self._store is None or self._x_range is None:
            return
        top = self.scroll.verticalScrollBar().value()
        bottom = top + self.scroll.viewport().height()
        for pid, row in self.rows.items():
            if pid in self.hidden or row.y() >= bottom or row.y() + row.height() <= top:
                continue
            row.ensure_plot(self._spare_plots)
            # A person's curves change only with a newer step of theirs (or another mode or window).
            drawn = (self._store.person_last_t(pid), self.mode, self.window_s)
            if drawn != row.drawn or force:
                row.drawn = drawn
                person = self._store.person_series(pid, self._since)
                if self.mode == "expressions":
                    for i, curve in enumerate(row.expression_curves):
                        curve.setData(person.t, person.probabilities[:, i])
                else:
                    row.indicator_curve.setData(person.t, INDICATOR_LEVEL_VALUES[person.indicator])
                row.shown_points = len(person.t)
            row.show_x_range(self._x_range)

    def _remove_row(self, person_id: int) -> None:
        row = self.rows.pop(person_id)
        plot = row.release_plot()
        if plot is not None and len(self._spare_plots) < MAX_SPARE_PLOTS:
            self._spare_plots.append(plot)
        row.setParent(None)
        row.deleteLater()

    def _add_row(self, person_id: int) -> PersonRow:
        row = PersonRow(person_id, self.classes)
        row.set_mode(self.mode)
        row.set_name(self.names.get(person_id, ""))
        row.clicked.connect(self.on_row_clicked)
        row.rename_requested.connect(self.on_row_rename_requested)
        row.hide_requested.connect(self.on_row_hide_requested)
        self.rows[person_id] = row
        order = sorted(self.rows)
        self.rows_layout.insertWidget(order.index(person_id), row)
        row.setVisible(person_id not in self.hidden)  # now, not at the next event: place_rows counts it
        return row

    def rename_person(self, person_id: int, name: str) -> None:
        name = name.strip()
        if name:
            self.names[person_id] = name
        else:
            self.names.pop(person_id, None)
        if person_id in self.rows:
            self.rows[person_id].set_name(name)
        self.heatmap.set_names(self.names)
        self.seat_map.set_names(self.names)
        self.person_renamed.emit(person_id, name)

    def set_person_visible(self, person_id: int, visible: bool) -> None:
        if visible:
            self.hidden.discard(person_id)
        else:
            self.hidden.add(person_id)
        if person_id in self.rows:
            self.rows[person_id].setVisible(visible)
        self._shown_steps = None  # a row shown again needs its data
        self.person_visibility_changed.emit(person_id, visible)

    @Slot(int)
    def show_person(self, person_id: int) -> None:
        """Open ``person_id``'s detailed timeline: the Timelines tab, their row shown, enlarged, in view."""
        self.tabs.setCurrentWidget(self.scroll)
        if person_id in self.hidden:
            self.set_person_visible(person_id, True)
        row = self.rows.get(person_id) or self._add_row(person_id)
        row.set_enlarged(True)
        self.scroll.ensureWidgetVisible(row)

    def toggle_enlarged(self, person_id: int) -> None:
        row = self.rows[person_id]
        row.set_enlarged(not row.enlarged)

    def save_class_png(self, path: Path) -> Path:
        """Save a picture of the class row (shares and faces visible) as PNG."""
        pixmap = self.class_panel.grab()
        if pixmap.isNull() or not pixmap.save(str(path), "PNG"):
            raise OSError(f"class timeline image {path} could not be written")
        return path

    def _apply_mode(self) -> None:
        legend = self.class_plot.getPlotItem().legend
        legend.clear()
        shown = zip(self.classes, self.class_expression_curves, strict=True) if self.mode == "expressions" \
            else zip(INDICATORS, self.class_indicator_curves, strict=True)
        for curve in (*self.class_expression_curves, *self.class_indicator_curves):
            curve.setVisible(False)
        for name, curve in shown:
            curve.setVisible(True)
            legend.addItem(curve, name)
        for row in self.rows.values():
            row.set_mode(self.mode)
        self._shown_steps = None

    @Slot(int)
    def on_mode_combo_changed(self, index: int) -> None:
        self.mode = MODES[index]
        self._apply_mode()

    @Slot(int)
    def on_heatmap_mode_combo_changed(self, index: int) -> None:
        self.heatmap.set_mode(HEATMAP_MODES[index])
        self.heatmap_legend.setText(legend_html(HEATMAP_MODES[index], self.classes))
        self.heatmap.refresh()

    @Slot(int)
    def on_tabs_current_changed(self, index: int) -> None:
        self._shown_steps = None

    @Slot(int)
    def on_window_spin_changed(self, minutes: int) -> None:
        self.window_s = minutes * 60.0
        self._shown_steps = None

    @Slot(int)
    def on_row_clicked(self, person_id: int) -> None:
        self.toggle_enlarged(person_id)

    @Slot(int)
    def on_row_rename_requested(self, person_id: int) -> None:
        current = self.names.get(person_id, "")
        name, ok = QInputDialog.getText(self, "Rename", f"Name for #{person_id} (empty: anonymous id):", text=current)
        if ok:
            self.rename_person(person_id, name)

    @Slot(int)
    def on_row_hide_requested(self, person_id: int) -> None:
        self.set_person_visible(person_id, False)

    @Slot()
    def on_people_menu_about_to_show(self) -> None:
        self.people_menu.clear()
        if not self.rows:
            self.people_menu.addAction("nobody seen yet").setEnabled(False)
        for pid in sorted(self.rows):
            action = QAction(self.names.get(pid) or f"#{pid}", self.people_menu)
            action.setCheckable(True)
            action.setChecked(pid not in self.hidden)
            action.toggled.connect(lambda checked, p=pid: self.set_person_visible(p, checked))
            self.people_menu.addAction(action)
