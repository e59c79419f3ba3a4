"""Building windows and reading session files in the UI tests."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

from PySide6.QtCore import QSettings

from fermonitor.core.settings import Settings
from fermonitor.ui.main_window import MainWindow

SESSION_TIMEOUT_MS = 60_000  # generous: the machine may be busy; these are not timing tests
TEST_RATE_HZ = 5.0


def fast_settings() -> Settings:
    base = Settings()
    return dataclasses.replace(base, analysis=dataclasses.replace(base.analysis, rate_hz=TEST_RATE_HZ, device="cpu"))


def make_window(qtbot: object, tmp_path: Path, source: str, model_path: Path | None,
                show_summary: bool = False, settings: Settings | None = None) -> MainWindow:
    qsettings = QSettings(str(tmp_path / "window.ini"), QSettings.Format.IniFormat)
    window = MainWindow(settings or fast_settings(), tmp_path / "settings.json", qsettings, source,
                        tmp_path / "sessions", model_path=model_path, show_summary=show_summary)
    qtbot.addWidget(window)
    window.show()
    return window


def read_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)
