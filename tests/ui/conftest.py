"""Qt test set-up: offscreen by default, user settings and logs in tmp, real faces, a tiny model.

Set FERMONITOR_TEST_REAL_SCREEN=1 to run these tests on the real screen instead of offscreen.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from shared_data import DATA_DIR
from torch import nn
from xvfb import running_xvfb

if not os.environ.get("FERMONITOR_TEST_REAL_SCREEN"):
    os.environ["QT_QPA_PLATFORM"] = "offscreen"

from ui_helpers import FACE_TILE_PX, write_video  # noqa: E402

from fermonitor.core.checkpoint import FERPLUS_CLASSES, ModelMeta, save_checkpoint  # noqa: E402
from fermonitor.core.models import list_models, register_model  # noqa: E402

TINY_ARCH = "ui_test_tiny_cnn"
# The offscreen platform cannot size windows to their hints and says so once per window.
OFFSCREEN_QT_NOISE = r"This plugin does not support propagateSizeHints"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/ui/" in str(item.path).replace(os.sep, "/"):
            item.add_marker(pytest.mark.qt_log_ignore(OFFSCREEN_QT_NOISE))


if TINY_ARCH not in list_models():
    @register_model(TINY_ARCH)
    def _tiny_cnn(num_classes: int = 8, dropout: float = 0.0) -> nn.Module:
        """A few-kilobyte CNN for 48x48 grey faces: the real checkpoint path, at test speed."""
        return nn.Sequential(
            nn.Conv2d(1, 4, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(4, 8, 3, stride=2, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(8, num_classes),
        )


@pytest.fixture(autouse=True)
def isolated_user_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Settings, window state, logs and default sessions in tmp: tests never touch the user's."""
    monkeypatch.setenv("FERMONITOR_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("FERMONITOR_SESSIONS_DIR", str(tmp_path / "sessions"))
    monkeypatch.setenv("FERMONITOR_LOG_DIR", str(tmp_path / "logs"))
    return tmp_path


@pytest.fixture(autouse=True)
def reset_quit_state() -> Iterator[None]:
    """A quit posted by one test (the app's window closing, a last window closed) is consumed here:
    left pending, it would end the next test's nested event loop (a picker's, a dialog's) at once."""
    yield
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    if app is not None:
        QTimer.singleShot(0, app.quit)
        app.exec()  # starts and ends with the thread's quit flag cleared


@pytest.fixture(scope="session")
def ui_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random tiny checkpoint written with save_checkpoint."""
    torch.manual_seed(0)
    from fermonitor.core.models import build_model

    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    save_checkpoint(path, build_model(TINY_ARCH), ModelMeta(arch=TINY_ARCH, classes=FERPLUS_CLASSES))
    return path


@pytest.fixture(scope="session")
def detectable_faces() -> np.ndarray:
    """Real FER2013 faces that the default detector (YuNet) finds once upscaled: uint8 (4, 48, 48)."""
    fer = DATA_DIR / "fer2013.csv.gz"
    if not fer.is_file():
        pytest.skip(f"real FER2013 data not found at {fer}")
    from fermonitor.core.detection import create_detector
    from training.data import read_fer2013

    images, _, _ = read_fer2013(fer)
    detector = create_detector("yunet")
    chosen = []
    for face in images[:400]:
        tile = cv2.cvtColor(cv2.resize(face, (FACE_TILE_PX, FACE_TILE_PX), interpolation=cv2.INTER_CUBIC),
                            cv2.COLOR_GRAY2BGR)
        canvas = np.full((FACE_TILE_PX * 2, FACE_TILE_PX * 2, 3), 128, np.uint8)
        canvas[FACE_TILE_PX // 2:FACE_TILE_PX // 2 + FACE_TILE_PX, FACE_TILE_PX // 2:FACE_TILE_PX // 2 + FACE_TILE_PX] = tile
        if len(detector.detect(canvas)) == 1:
            chosen.append(face)
        if len(chosen) == 4:
            break
    assert len(chosen) == 4, "fewer than 4 of 400 real FER faces are found by the YuNet detector"
    return np.stack(chosen)


@pytest.fixture()
def face_video(tmp_path: Path, detectable_faces: np.ndarray) -> Path:
    """A 20-second video of three real FER faces (tests stop it once they have what they need)."""
    return write_video(tmp_path / "class.avi", detectable_faces[:3], 20.0)


@pytest.fixture()
def short_video(tmp_path: Path, detectable_faces: np.ndarray) -> Path:
    """A 2-second video of two real FER faces, for a source that ends."""
    return write_video(tmp_path / "short.avi", detectable_faces[:2], 2.0)


@pytest.fixture()
def xvfb_display() -> Iterator[str]:
    """A real X server (Xvfb) of its own; yields its DISPLAY."""
    with running_xvfb(1024, 768) as display:
        yield display
