"""Status bar contents: the "analysing" indicator, analysis rate, latency, dropped frames, CSV path."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from PySide6.QtWidgets import QLabel, QStatusBar, QWidget

from fermonitor.core.results import FrameResult

RATE_WINDOW_S = 5.0  # the analysis rate is averaged over this many seconds

STATE_STYLES: dict[str, tuple[str, str]] = {
    "analysing": ("\u25cf Analysing", "color: white; background: #c0392b; padding: 1px 6px; border-radius: 3px;"),
    "paused": ("\u275a\u275a Paused", "color: black; background: #f1c40f; padding: 1px 6px; border-radius: 3px;"),
    "stopped": ("\u25a0 Not analysing", "color: #555; padding: 1px 6px;"),
    "loading": ("\u2026 Loading model", "color: #555; padding: 1px 6px;"),
}


class StatusPanel:
    """Owns the labels it adds to a QStatusBar and keeps the rolling figures they show."""

    def __init__(self, status_bar: QStatusBar, parent: QWidget | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.state_label = QLabel(parent)
        self.rate_label = QLabel(parent)
        self.latency_label = QLabel(parent)
        self.dropped_label = QLabel(parent)
        self.csv_label = QLabel(parent)
        self.note_label = QLabel(parent)  # what the app did about capturing its own window
        self.note_label.setStyleSheet("color: #6b4e00;")
        status_bar.addWidget(self.state_label)
        for label in (self.rate_label, self.latency_label, self.dropped_label, self.note_label):
            status_bar.addWidget(label)
        status_bar.addPermanentWidget(self.csv_label)
        self._times: deque[float] = deque()
        self._latency_s = 0.0
        self.dropped_total = 0
        self.state = ""
        self.set_state("stopped")
        self.reset()

    def set_state(self, state: str) -> None:
        text, style = STATE_STYLES[state]
        self.state = state
        self.state_label.setText(text)
        self.state_label.setStyleSheet(style)

    def set_note(self, text: str) -> None:
        self.note_label.setText(text)
        self.note_label.setToolTip(text)

    def set_csv_path(self, path: Path | None) -> None:
        self.csv_label.setText("" if path is None else f"CSV: {path}")

    def reset(self) -> None:
        self._times.clear()
        self._latency_s = 0.0
        self.dropped_total = 0
        self.refresh()

    def add_result(self, result: FrameResult) -> None:
        now = self._clock()
        self._times.append(now)
        while self._times and now - self._times[0] > RATE_WINDOW_S:
            self._times.popleft()
        self._latency_s = result.latency_s
        self.dropped_total += result.dropped_frames

    def analysis_rate_hz(self) -> float:
        if len(self._times) < 2:
            return 0.0
        span = self._times[-1] - self._times[0]
        return (len(self._times) - 1) / span if span > 0 else 0.0

    def refresh(self) -> None:
        self.rate_label.setText(f"{self.analysis_rate_hz():.1f} steps/s")
        self.latency_label.setText(f"latency {self._latency_s * 1000:.0f} ms")
        self.dropped_label.setText(f"dropped {self.dropped_total} frames")
