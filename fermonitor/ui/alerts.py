"""The alert banner: the messages of :class:`fermonitor.core.alerts.AlertMonitor` in one quiet line."""

from __future__ import annotations

from PySide6.QtWidgets import QLabel, QWidget


class AlertBanner(QLabel):
    """A quiet, single-line banner, hidden while no alert holds."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWordWrap(True)
        self.setStyleSheet("background: #fff4d6; color: #6b4e00; padding: 4px 8px; border-radius: 3px;")
        self.hide()

    def show_messages(self, messages: list[str]) -> None:
        if not messages:
            self.hide()
            return
        self.setText("  \u2022  ".join(messages))
        self.show()
