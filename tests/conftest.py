"""Shared fixtures: real FER+ faces, a tiny random checkpoint, face videos and a real X server."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from shared_data import DATA_DIR  # the shared data folder, computed once there for every test file
from xvfb import running_xvfb

XVFB_SIZE = (1280, 720)


@pytest.fixture(autouse=True, scope="session")
def _log_to_tmp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Keep the CLI's log file out of the user's log folder."""
    folder = tmp_path_factory.mktemp("logs")
    previous = os.environ.get("FERMONITOR_LOG_DIR")
    os.environ["FERMONITOR_LOG_DIR"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("FERMONITOR_LOG_DIR", None)
    else:
        os.environ["FERMONITOR_LOG_DIR"] = previous


FER_FACES_WANTED = 400


@pytest.fixture(scope="session")
def fer_faces() -> tuple[np.ndarray, np.ndarray]:
    """Real FER+ faces with their majority labels: uint8 (N, 48, 48), int64 (N,), N = 400.

    The first rows of fer2013.csv(.gz) (Training usage) that keep a label under the FER+ majority
    rule; only the start of the files is read, so this is quick.
    """
    import csv
    import gzip
    import io
    from itertools import islice

    fer = DATA_DIR / "fer2013.csv.gz"
    if not fer.is_file():
        fer = DATA_DIR / "fer2013.csv"
    votes_file = DATA_DIR / "fer2013new.csv"
    if not fer.is_file() or not votes_file.is_file():
        pytest.skip(f"FER2013/FER+ data not found in {DATA_DIR} (needs fer2013.csv[.gz] and fer2013new.csv)")
    from training.data import majority_labels

    rows_read = 2 * FER_FACES_WANTED
    raw = gzip.open(fer, "rb") if fer.suffix == ".gz" else open(fer, "rb")
    with io.TextIOWrapper(raw, encoding="utf-8", newline="") as handle:
        pixel_rows = [row[1] for row in islice(csv.reader(handle), 1, rows_read + 1)]
    with open(votes_file, encoding="utf-8", newline="") as handle:
        votes = np.array([[int(v) for v in row[2:]] for row in islice(csv.reader(handle), 1, rows_read + 1)])
    labels = majority_labels(votes)
    keep = np.flatnonzero(labels >= 0)[:FER_FACES_WANTED]
    images = np.stack([np.array(pixel_rows[i].split(), dtype=np.uint8).reshape(48, 48) for i in keep])
    return images, labels[keep].astype(np.int64)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised vgg19 checkpoint with the FER+ classes."""
    import torch

    from fermonitor.core.checkpoint import FERPLUS_CLASSES, ModelMeta, save_checkpoint
    from fermonitor.core.models import build_model

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "tiny_vgg19.pt"
    meta = ModelMeta(arch="vgg19", classes=FERPLUS_CLASSES, metrics={"test_accuracy": 0.125},
                     train_args={"note": "random weights for tests"})
    save_checkpoint(path, build_model("vgg19", num_classes=len(FERPLUS_CLASSES)), meta)
    return path


def place_faces(canvas: np.ndarray, faces: np.ndarray, positions: list[tuple[int, int]], side: int) -> None:
    """Paste grey 48x48 faces, upscaled to ``side`` pixels, at top-left ``positions`` of a BGR canvas."""
    for face, (x, y) in zip(faces, positions, strict=True):
        big = cv2.resize(face, (side, side), interpolation=cv2.INTER_LINEAR)
        canvas[y:y + side, x:x + side] = big[:, :, None]


@pytest.fixture
def paste_faces() -> Callable[[np.ndarray, np.ndarray, list[tuple[int, int]], int], None]:
    """:func:`place_faces`, for tests that compose their own frames."""
    return place_faces


FaceVideoFactory = Callable[..., Path]


@pytest.fixture
def make_face_video(tmp_path: Path) -> FaceVideoFactory:
    """A factory writing a small video (MJPG .avi) with FER faces that drift slowly.

    ``make_face_video(faces, seconds=3.0, fps=10, size=(320, 240), side=96, name="faces.avi")``
    places the faces in a row across the frame on a plain grey background.
    """

    def make(faces: np.ndarray, seconds: float = 3.0, fps: float = 10.0, size: tuple[int, int] = (320, 240),
             side: int = 96, name: str = "faces.avi") -> Path:
        width, height = size
        path = tmp_path / name
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
        assert writer.isOpened(), "OpenCV cannot write MJPG videos here"
        gap = (width - len(faces) * side) // (len(faces) + 1)
        assert gap >= 0, f"{len(faces)} faces of {side} px do not fit in {width} px"
        for i in range(int(round(seconds * fps))):
            canvas = np.full((height, width, 3), 120, np.uint8)
            drift = int(round(4 * np.sin(i / fps)))  # a little motion, as a seated person makes
            positions = [(gap + k * (side + gap) + drift, (height - side) // 2) for k in range(len(faces))]
            place_faces(canvas, faces, positions, side)
            writer.write(canvas)
        writer.release()
        return path

    return make


@pytest.fixture(scope="session")
def xvfb_display() -> Iterator[str]:
    """A real X server (Xvfb, 1280x720x24) for screen-capture tests; DISPLAY points to it."""
    with running_xvfb(*XVFB_SIZE) as display:
        previous = os.environ.get("DISPLAY")
        os.environ["DISPLAY"] = display
        try:
            yield display
        finally:
            if previous is None:
                os.environ.pop("DISPLAY", None)
            else:
                os.environ["DISPLAY"] = previous


SHOW_IMAGE_SCRIPT = """
import sys, tkinter
from pathlib import Path
root = tkinter.Tk()
root.title(sys.argv[2])
root.overrideredirect(True)
root.geometry("+{x}+{y}")
photo = tkinter.PhotoImage(file=sys.argv[1])
tkinter.Label(root, image=photo, borderwidth=0, highlightthickness=0).pack()
moves = Path(sys.argv[3])

def follow_moves():
    if moves.is_file():
        x, y = moves.read_text().split()
        moves.unlink()
        root.geometry(f"+{{x}}+{{y}}")
        root.update()
        print("moved", flush=True)
    root.after(50, follow_moves)

root.update()
print("shown", flush=True)
root.after(50, follow_moves)
root.mainloop()
"""


class ShownImage:
    """A picture shown in a borderless, titled X window by another process; :meth:`move` moves it."""

    def __init__(self, process: subprocess.Popen[str], moves: Path) -> None:
        self.process = process
        self._moves = moves

    def move(self, x: int, y: int) -> None:
        """Move the window to (x, y) and wait until it has moved."""
        staged = self._moves.with_suffix(".tmp")
        staged.write_text(f"{x} {y}")
        staged.replace(self._moves)
        assert self.process.stdout is not None and self.process.stdout.readline().strip() == "moved"


@pytest.fixture()
def show_on_x(xvfb_display: str, tmp_path: Path) -> Iterator[object]:
    """Show a picture in a borderless window at (x, y) of the Xvfb screen, in another process:
    ``show_on_x(image, x, y, title="faces") -> ShownImage``."""
    try:
        import tkinter  # noqa: F401
    except ImportError:
        pytest.skip("tkinter (python3-tk) is needed to show a window on Xvfb")
    shown: list[ShownImage] = []

    def show(image: np.ndarray, x: int, y: int, title: str = "faces") -> ShownImage:
        png = tmp_path / f"shown{len(shown)}.png"
        cv2.imwrite(str(png), image)
        moves = tmp_path / f"shown{len(shown)}.move"
        env = {**os.environ, "DISPLAY": xvfb_display}
        process = subprocess.Popen([sys.executable, "-c", SHOW_IMAGE_SCRIPT.format(x=x, y=y), str(png), title,
                                    str(moves)], env=env, stdout=subprocess.PIPE, text=True)
        shown.append(ShownImage(process, moves))
        assert process.stdout is not None and process.stdout.readline().strip() == "shown"
        return shown[-1]

    try:
        yield show
    finally:
        for item in shown:
            item.process.terminate()
            item.process.wait(timeout=10)
