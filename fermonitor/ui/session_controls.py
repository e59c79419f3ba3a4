"""Session toolbar: start, pause, stop, source and settings, with the current source shown."""

from __future__ import annotations

from PySide6.QtCore import Signal, Slot
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QLabel, QToolBar, QWidget


class SessionControls(QToolBar):
    """Buttons that ask for session changes; the window decides and calls :meth:`set_state`."""

    start_requested = Signal()
    pause_toggled = Signal(bool)
    stop_requested = Signal()
    source_requested = Signal()
    settings_requested = Signal()
    compact_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Session", parent)
        self.setMovable(False)
        self.start_action = QAction("\u25b6 Start", self)
        self.pause_action = QAction("\u275a\u275a Pause", self)
        self.pause_action.setCheckable(True)
        self.stop_action = QAction("\u25a0 Stop", self)
        self.source_action = QAction("Source\u2026", self)
        self.settings_action = QAction("Settings\u2026", self)
        self.compact_action = QAction("Compact view", self)
        self.compact_action.setToolTip("A small panel that stays on top: the class chart, counts and alerts")
        for action in (self.start_action, self.pause_action, self.stop_action):
            self.addAction(action)
        self.addSeparator()
        self.addAction(self.source_action)
        self.addAction(self.settings_action)
        self.addAction(self.compact_action)
        self.addSeparator()
        self.source_label = QLabel()
        self.addWidget(self.source_label)
        self.start_action.triggered.connect(self.on_start_action_triggered)
        self.pause_action.toggled.connect(self.on_pause_action_toggled)
        self.stop_action.triggered.connect(self.on_stop_action_triggered)
        self.source_action.triggered.connect(self.on_source_action_triggered)
        self.settings_action.triggered.connect(self.on_settings_action_triggered)
        self.compact_action.triggered.connect(self.compact_requested)
        self.set_state("stopped")

    def set_source(self, spec: str) -> None:
        self.source_label.setText(f"  Source: {spec}")

    def set_state(self, state: str) -> None:
        """Enable what makes sense in ``state`` ("stopped", "loading", "analysing", "paused")."""
        running = state != "stopped"
        self.start_action.setEnabled(not running)
        self.pause_action.setEnabled(state in ("analysing", "paused"))
        self.stop_action.setEnabled(running)
        self.source_action.setEnabled(not running)
        self.settings_action.setEnabled(not running)
        self.pause_action.blockSignals(True)
        self.pause_action.setChecked(state == "paused")
        self.pause_action.blockSignals(False)

    @Slot()
    def on_start_action_triggered(self) -> None:
        self.start_requested.emit()

    @Slot(bool)
    def on_pause_action_toggled(self, checked: bool) -> None:
        self.pause_toggled.emit(checked)

    @Slot()
    def on_stop_action_triggered(self) -> None:
        self.stop_requested.emit()

    @Slot()
    def on_source_action_triggered(self) -> None:
        self.source_requested.emit()

    @Slot()
    def on_settings_action_triggered(self) -> None:
        self.settings_requested.emit()
