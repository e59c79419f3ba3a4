"""A small always-on-top panel for one-screen use: the class chart, the counts and the alert banner."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import QLabel, QPushButton, QVBoxLayout, QWidget

from fermonitor.core.pipeline import INDICATORS
from fermonitor.core.results import FrameResult
from fermonitor.core.timeline import TimelineStore
from fermonitor.ui.alerts import AlertBanner
from fermonitor.ui.status_panel import STATE_STYLES
from fermonitor.ui.timeline_widget import INDICATOR_COLOURS

COMPACT_SIZE = (360, 330)
CHART_WINDOW_S = 180.0


def counts_text(result: FrameResult) -> str:
    """'12 faces: 5 positive, 6 neutral, 1 negative; 2 absent'."""
    counts = {name: 0 for name in INDICATORS}
    for face in result.faces:
        counts[face.indicator] = counts.get(face.indicator, 0) + 1
    shown = ", ".join(f"{counts[name]} {name}" for name in INDICATORS if name != "absent")
    return f"{len(result.faces)} faces: {shown}; {len(result.absent_ids)} absent"


class CompactView(QWidget):
    """The class at a glance in a small window that stays on top; ``full_requested`` when the user
    asks for the full window (the button, or closing this panel)."""

    full_requested = Signal()

    def __init__(self) -> None:
        super().__init__(None, Qt.WindowType.Window | Qt.WindowType.WindowStaysOnTopHint)
        self.setWindowTitle("fermonitor (compact)")
        self.state_label = QLabel()
        self.counts_label = QLabel("No faces yet")
        self.alert_banner = AlertBanner()
        self.chart = pg.PlotWidget(title="Class: indicator shares")
        self.chart.setBackground("w")
        self.chart.setMouseEnabled(x=False, y=False)
        self.chart.setMenuEnabled(False)
        self.chart.hideButtons()
        self.chart.setYRange(-0.02, 1.02, padding=0)
        self.chart.addLegend(offset=(-5, 5), labelTextSize="7pt", colCount=2)
        self.curves = [self.chart.plot([], [], pen=pg.mkPen(INDICATOR_COLOURS[name], width=1.5), name=name)
                       for name in INDICATORS]
        self.full_button = QPushButton("Full window")
        self.full_button.clicked.connect(self.on_full_button_clicked)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.state_label)
        layout.addWidget(self.counts_label)
        layout.addWidget(self.alert_banner)
        layout.addWidget(self.chart, 1)
        layout.addWidget(self.full_button)
        self.resize(*COMPACT_SIZE)
        self._shown_steps: tuple[int, int] | None = None
        self.set_state("stopped")

    def set_state(self, state: str) -> None:
        text, style = STATE_STYLES[state]
        self.state_label.setText(text)
        self.state_label.setStyleSheet(style)

    def add_result(self, result: FrameResult, alerts: list[str]) -> None:
        self.counts_label.setText(counts_text(result))
        self.alert_banner.show_messages(alerts)

    def refresh(self, store: TimelineStore) -> None:
        """Redraw the chart from ``store`` when it grew and the panel is shown."""
        key = (id(store), store.version)
        if not self.isVisible() or key == self._shown_steps or store.last_t is None:
            return
        self._shown_steps = key
        series = store.class_series(store.last_t - CHART_WINDOW_S)
        for i, curve in enumerate(self.curves):
            curve.setData(series.t, series.indicator_shares[:, i])

    def reset(self) -> None:
        self._shown_steps = None
        self.counts_label.setText("No faces yet")
        self.alert_banner.show_messages([])
        for curve in self.curves:
            curve.setData([], [])

    @Slot()
    def on_full_button_clicked(self) -> None:
        self.full_requested.emit()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt override)
        # Closing the panel returns to the full window (shown before this one closes, so the app
        # does not take it for its last window and quit).
        self.full_requested.emit()
        event.accept()
