"""Save docs/screenshot.png: the app under Xvfb analysing a 5x5 video-call gallery of real FER+ faces.

Usage (from the repository root, Linux with Xvfb installed):

    .venv/bin/python docs/make_screenshot.py [--seconds 40] [--model PATH] [--output docs/screenshot.png]

The video is composed here from real FER2013 faces (../shared/data/fer2013.csv.gz). Without
``--model`` the shipped model is used when installed, else a random tiny CNN checkpoint is written to a
temporary folder (the picture then shows the app working, not meaningful expressions).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "fer2013.csv.gz"
DISPLAY = ":97"
SCREEN = "1600x1000x24"
GRID = (5, 5)  # columns, rows of the video-call gallery
FACES = GRID[0] * GRID[1]
TILE_PX = 96  # a face's side in a 5x5 gallery of a 720p call
VIDEO_SIZE = (1280, 720)
VIDEO_FPS = 10
VIDEO_SECONDS = 120
WINDOW_SIZE = (1500, 900)
TINY_ARCH = "screenshot_tiny_cnn"

log = logging.getLogger("make_screenshot")


def pick_faces(count: int) -> np.ndarray:
    """Real FER2013 faces the default detector (YuNet) finds once upscaled."""
    from fermonitor.core.detection import create_detector
    from training.data import read_fer2013

    if not DATA.is_file():
        raise SystemExit(f"real FER2013 data not found at {DATA}")
    images, _, _ = read_fer2013(DATA)
    detector = create_detector("yunet")
    chosen = []
    for face in images[::7]:
        tile = cv2.cvtColor(cv2.resize(face, (TILE_PX, TILE_PX), interpolation=cv2.INTER_CUBIC), cv2.COLOR_GRAY2BGR)
        canvas = cv2.copyMakeBorder(tile, TILE_PX // 2, TILE_PX // 2, TILE_PX // 2, TILE_PX // 2,
                                    cv2.BORDER_CONSTANT, value=(120, 120, 120))
        if len(detector.detect(canvas)) == 1:
            chosen.append(face)
        if len(chosen) == count:
            return np.stack(chosen)
    raise SystemExit(f"fewer than {count} detectable faces found")


def write_video(path: Path, faces: np.ndarray) -> None:
    width, height = VIDEO_SIZE
    cell_w, cell_h = width // GRID[0], height // GRID[1]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), VIDEO_FPS, VIDEO_SIZE)
    tiles = [cv2.cvtColor(cv2.resize(f, (TILE_PX, TILE_PX), interpolation=cv2.INTER_CUBIC), cv2.COLOR_GRAY2BGR)
             for f in faces]
    for i in range(VIDEO_SECONDS * VIDEO_FPS):
        image = np.full((height, width, 3), (30, 30, 30), np.uint8)
        for k, tile in enumerate(tiles):
            column, row = k % GRID[0], k // GRID[0]
            cv2.rectangle(image, (column * cell_w + 2, row * cell_h + 2),
                          ((column + 1) * cell_w - 3, (row + 1) * cell_h - 3), (66, 62, 58), -1)
            left = column * cell_w + (cell_w - TILE_PX) // 2 + int(5 * np.sin(i / 9 + k))
            top = row * cell_h + (cell_h - TILE_PX) // 2 + int(3 * np.cos(i / 7 + k))
            image[top:top + TILE_PX, left:left + TILE_PX] = tile
        writer.write(image)
    writer.release()


def random_checkpoint(path: Path) -> Path:
    """A random tiny CNN checkpoint (registered here only): the app at full speed on a busy CPU."""
    import torch
    from torch import nn

    from fermonitor.core.checkpoint import FERPLUS_CLASSES, ModelMeta, save_checkpoint
    from fermonitor.core.models import build_model, register_model

    @register_model(TINY_ARCH)
    def _tiny(num_classes: int = 8, dropout: float = 0.0) -> nn.Module:
        return nn.Sequential(nn.Conv2d(1, 8, 3, stride=2, padding=1), nn.ReLU(),
                             nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(),
                             nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, num_classes))

    torch.manual_seed(3)
    model = build_model(TINY_ARCH)
    with torch.no_grad():  # larger logits: curves that move, as a trained model's do
        model[-1].weight.mul_(6.0)
    save_checkpoint(path, model, ModelMeta(arch=TINY_ARCH, classes=FERPLUS_CLASSES))
    return path


def start_xvfb() -> subprocess.Popen[bytes]:
    if shutil.which("Xvfb") is None:
        raise SystemExit("Xvfb is not installed (apt-get install xvfb)")
    process = subprocess.Popen(["Xvfb", DISPLAY, "-screen", "0", SCREEN, "-nolisten", "tcp"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    socket = Path(f"/tmp/.X11-unix/X{DISPLAY[1:]}")
    deadline = time.monotonic() + 10
    while not socket.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    if not socket.exists():
        process.kill()
        raise SystemExit(f"Xvfb {DISPLAY} did not start")
    return process


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=40.0, help="how long the session runs before the picture")
    parser.add_argument("--model", type=Path, help="a checkpoint (default: shipped model, else a random tiny CNN)")
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "screenshot.png")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    sys.path.insert(0, str(REPO))

    with tempfile.TemporaryDirectory(prefix="fermonitor-shot-") as tmp_name:
        tmp = Path(tmp_name)
        # settings, window state and logs of this run stay in the temporary folder
        os.environ.update(FERMONITOR_CONFIG_DIR=str(tmp / "config"), FERMONITOR_SESSIONS_DIR=str(tmp),
                          FERMONITOR_LOG_DIR=str(tmp / "logs"), DISPLAY=DISPLAY, QT_QPA_PLATFORM="xcb")
        video = tmp / "class.avi"
        write_video(video, pick_faces(FACES))
        from fermonitor.core.classifier import resolve_backend
        from fermonitor.core.resources import default_model_path

        model = args.model
        if model is None and not default_model_path(resolve_backend("auto", None)).is_file():
            model = random_checkpoint(tmp / "random_tiny.pt")
        xvfb = start_xvfb()
        try:
            return take_screenshot(video, model, tmp / "session.csv", args.seconds, args.output)
        finally:
            xvfb.terminate()
            xvfb.wait(timeout=10)


def take_screenshot(video: Path, model: Path | None, csv_path: Path, seconds: float, output: Path) -> int:
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from fermonitor.ui.app import create_window

    app = QApplication([sys.argv[0]])
    window = create_window(argparse.Namespace(source=f"video:{video}", csv=str(csv_path), exit_after=seconds,
                                              model=None if model is None else str(model)))
    window.resize(*WINDOW_SIZE)
    window.show()
    window.start_session(csv_path)
    saved: list[bool] = []

    def grab() -> None:
        window.timeline.refresh(window.store, force=True)
        window.video_view.refresh()
        app.processEvents()
        saved.append(window.grab().save(str(output), "PNG"))
        window.close()

    QTimer.singleShot(int(seconds * 1000), grab)
    app.exec()
    steps = len(window.store)
    # end Qt's connection to the X server before Xvfb goes away
    window.deleteLater()
    app.processEvents()
    app.shutdown()
    if not saved or not saved[0]:
        log.error("the screenshot could not be written to %s", output)
        return 1
    log.info("saved %s (%d steps analysed)", output, steps)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
