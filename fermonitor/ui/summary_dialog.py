"""End-of-session summary: per-person shares and where the CSV and class timeline picture went."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from fermonitor.core.pipeline import INDICATORS
from fermonitor.core.timeline import PersonSummary


def summary_rows(summary: dict[int, PersonSummary], names: dict[int, str]) -> list[list[str]]:
    """One row of text per person: name, seconds seen, indicator shares, most frequent expression."""
    rows = []
    for pid, person in sorted(summary.items()):
        top = max(person.top_expression_shares, key=person.top_expression_shares.get) if person.steps_seen else ""
        rows.append([
            names.get(pid) or f"#{pid}",
            f"{person.last_t - person.first_t:.0f} s",
            *(f"{person.indicator_shares.get(name, 0.0):.0%}" for name in INDICATORS),
            f"{top} ({person.top_expression_shares[top]:.0%})" if top else "",
        ])
    return rows


class SummaryDialog(QDialog):
    """A table of per-person shares with the paths of the CSV and the class timeline PNG."""

    HEADERS = ("person", "time span", *INDICATORS, "most frequent expression")

    def __init__(self, summary: dict[int, PersonSummary], names: dict[int, str], csv_path: Path,
                 png_path: Path | None, reason: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Session summary")
        rows = summary_rows(summary, names)
        self.table = QTableWidget(len(rows), len(self.HEADERS))
        self.table.setHorizontalHeaderLabels(list(self.HEADERS))
        for r, row in enumerate(rows):
            for c, text in enumerate(row):
                self.table.setItem(r, c, QTableWidgetItem(text))
        self.table.resizeColumnsToContents()
        lines = [f"Session ended: {reason}.", f"CSV: {csv_path}"]
        if png_path is not None:
            lines.append(f"Class timeline: {png_path}")
        if not rows:
            lines.append("Nobody was seen in this session.")
        info = QLabel("\n".join(lines))
        info.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(info)
        layout.addWidget(self.table)
        layout.addWidget(buttons)
        self.resize(640, 360)
