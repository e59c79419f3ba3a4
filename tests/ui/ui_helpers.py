"""Building windows and reading session files in the UI tests."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import cv2
import numpy as np
from PySide6.QtCore import QSettings

from fermonitor.core.settings import Settings
from fermonitor.ui.main_window import MainWindow

SESSION_TIMEOUT_MS = 60_000  # generous: the machine may be busy; these are not timing tests
TEST_RATE_HZ = 5.0
FACE_TILE_PX = 150  # FER faces are upscaled to this size in test videos
VIDEO_SIZE = (640, 360)
VIDEO_FPS = 10


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


def gallery_image(faces: np.ndarray, size: tuple[int, int] = VIDEO_SIZE, shift: int = 0) -> np.ndarray:
    """A BGR picture with the faces upscaled side by side on a grey background."""
    width, height = size
    image = np.full((height, width, 3), 110, np.uint8)
    gap = (width - len(faces) * FACE_TILE_PX) // (len(faces) + 1)
    top = (height - FACE_TILE_PX) // 2
    for i, face in enumerate(faces):
        tile = cv2.resize(face, (FACE_TILE_PX, FACE_TILE_PX), interpolation=cv2.INTER_CUBIC)
        left = gap + i * (FACE_TILE_PX + gap) + shift
        image[top:top + FACE_TILE_PX, left:left + FACE_TILE_PX] = cv2.cvtColor(tile, cv2.COLOR_GRAY2BGR)
    return image


def write_video(path: Path, faces: np.ndarray, seconds: float) -> Path:
    """A real video file (MJPG AVI) of the faces drifting a few pixels, ``seconds`` long."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), VIDEO_FPS, VIDEO_SIZE)
    assert writer.isOpened(), f"OpenCV cannot write {path}"
    for i in range(int(seconds * VIDEO_FPS)):
        writer.write(gallery_image(faces, shift=(i % 10) - 5))
    writer.release()
    return path
