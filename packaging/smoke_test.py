"""Smoke test of the built executable: start it offscreen on a video, check its log and its CSV.

Usage, from the repository root after ``make package``::

    python packaging/smoke_test.py                 # dist/fermonitor/fermonitor (or .exe, or .app)
    python packaging/smoke_test.py PATH/TO/EXECUTABLE --seconds 30

It writes a video of real FER+ faces (from ../shared/data when present, else a face-free video and
then only the CSV header is checked), starts the executable with
``--source video:PATH --csv OUT --exit-after SECONDS`` under ``QT_QPA_PLATFORM=offscreen`` with its
settings, sessions and log folders in a temporary folder, waits for the startup line
"fermonitor started", and fails on ImportError, ModuleNotFoundError, a missing file, a non-zero
exit status, a missing or malformed CSV. It prints the time from start to the startup line and to
the first analysed frame. Exit status 0 when every check passed.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger("smoke_test")

REPO = Path(__file__).resolve().parents[1]
FER2013 = REPO.parent / "shared" / "data" / "fer2013.csv.gz"
STARTED_LINE = "fermonitor started"  # logged by fermonitor.ui.app once the window is up
FIRST_FRAME_LINE = "first frame analysed"  # logged by fermonitor.ui.workers.AnalysisWorker.step
CSV_HEADER = (
    "timestamp,t_seconds,frame_index,person_id,person_name,x,y,w,h,neutral,happiness,surprise,"
    "sadness,anger,disgust,fear,contempt,top_expression,top_probability,indicator"
)
# Output that means the bundle lacks something; matched case-sensitively in stdout, stderr and log.
FAILURE_PATTERNS = (
    "ImportError", "ModuleNotFoundError", "No such file or directory", "FileNotFoundError",
    "does not exist", "Could not load the Qt platform plugin", "Traceback (most recent call last)",
    "uncaught exception",
)
VIDEO_FPS = 10
VIDEO_SIZE_PX = (960, 540)  # width, height
FACE_SIDE_PX = 200  # FER's 48 px faces upscaled so the Haar detector finds them
N_FACES = 6
SOURCE_PADDING_S = 20  # the video outlasts --exit-after, so the session ends by the timer


@dataclass
class SmokeResult:
    """What one run showed; ``failures`` empty means it passed."""

    returncode: int | None = None
    startup_s: float | None = None
    first_frame_s: float | None = None
    rows: int = 0
    people: int = 0
    failures: list[str] = field(default_factory=list)


def default_executable() -> Path:
    """Where ``make package`` puts the executable on this platform."""
    dist = REPO / "dist"
    if sys.platform == "darwin":
        return dist / "fermonitor.app" / "Contents" / "MacOS" / "fermonitor"
    return dist / "fermonitor" / ("fermonitor.exe" if sys.platform == "win32" else "fermonitor")


def read_fer_faces(path: Path, count: int) -> np.ndarray | None:
    """The first ``count`` faces of fer2013.csv.gz, read directly (no training code in the way)."""
    if not path.is_file():
        return None
    faces = []
    with gzip.open(path, "rt", encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        next(reader)
        for row in reader:
            faces.append(np.array(row[1].split(), dtype=np.uint8).reshape(48, 48))
            if len(faces) == count:
                break
    return np.stack(faces)


def write_video(path: Path, seconds: float, faces: np.ndarray | None) -> None:
    """An MJPG video: the faces on a grey background, still, for ``seconds``."""
    width, height = VIDEO_SIZE_PX
    frame = np.full((height, width, 3), 200, np.uint8)
    if faces is not None:
        columns = 3
        gap_x = (width - columns * FACE_SIDE_PX) // (columns + 1)
        rows = (len(faces) + columns - 1) // columns
        gap_y = (height - rows * FACE_SIDE_PX) // (rows + 1)
        for i, face in enumerate(faces):
            x = gap_x + (i % columns) * (FACE_SIDE_PX + gap_x)
            y = gap_y + (i // columns) * (FACE_SIDE_PX + gap_y)
            big = cv2.resize(face, (FACE_SIDE_PX, FACE_SIDE_PX), interpolation=cv2.INTER_CUBIC)
            frame[y:y + FACE_SIDE_PX, x:x + FACE_SIDE_PX] = big[:, :, None]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), VIDEO_FPS, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write the test video {path}")
    try:
        for _ in range(int(seconds * VIDEO_FPS)):
            writer.write(frame)
    finally:
        writer.release()


def isolated_env(folder: Path) -> dict[str, str]:
    """Offscreen Qt, and settings, sessions and logs inside ``folder``, never the user's own."""
    env = dict(os.environ)
    env.update({
        "QT_QPA_PLATFORM": "offscreen",
        "FERMONITOR_CONFIG_DIR": str(folder / "config"),
        "FERMONITOR_SESSIONS_DIR": str(folder / "sessions"),
        "FERMONITOR_LOG_DIR": str(folder / "logs"),
        # Qt's own per-user files (fonts cache and the like) stay in the folder too.
        "XDG_CONFIG_HOME": str(folder / "xdg-config"),
        "XDG_CACHE_HOME": str(folder / "xdg-cache"),
        "XDG_DATA_HOME": str(folder / "xdg-data"),
        "XDG_STATE_HOME": str(folder / "xdg-state"),
    })
    # The frozen app must not lean on this checkout or this virtual environment.
    for name in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"):
        env.pop(name, None)
    return env


def check_csv(path: Path, expect_rows: bool, result: SmokeResult) -> None:
    if not path.is_file():
        result.failures.append(f"the session CSV {path} was not written")
        return
    with open(path, encoding="utf-8", newline="") as handle:
        lines = handle.read().splitlines()
    if not lines or lines[0] != CSV_HEADER:
        result.failures.append(f"CSV header is {lines[0] if lines else '(empty file)'!r}, expected {CSV_HEADER!r}")
        return
    rows = list(csv.DictReader(lines))
    result.rows = len(rows)
    result.people = len({row["person_id"] for row in rows})
    for number, row in enumerate(rows, start=2):
        try:
            probabilities = [float(row[name]) for name in CSV_HEADER.split(",")[9:17]]
            int(row["person_id"]), float(row["t_seconds"])
        except (TypeError, ValueError) as exc:
            result.failures.append(f"CSV line {number} is malformed ({exc}): {row}")
            return
        if abs(sum(probabilities) - 1.0) > 1e-3:
            result.failures.append(f"CSV line {number}: probabilities sum to {sum(probabilities):.4f}, not 1")
            return
    if expect_rows and not rows:
        result.failures.append("the CSV has a header but no rows: no face was analysed")


def run_smoke_test(executable: Path, seconds: float, timeout_s: float, folder: Path) -> SmokeResult:
    """Run the executable once in ``folder`` and check what it did."""
    result = SmokeResult()
    if not executable.is_file():
        result.failures.append(f"executable {executable} does not exist: build it with `make package`")
        return result
    faces = read_fer_faces(FER2013, N_FACES)
    if faces is None:
        log.warning("no FER data at %s: the video has no faces and only the CSV header is checked", FER2013)
    video, csv_path = folder / "faces.avi", folder / "session.csv"
    write_video(video, seconds + SOURCE_PADDING_S, faces)
    command = [str(executable), "--verbose", "--source", f"video:{video}", "--csv", str(csv_path),
               "--exit-after", str(seconds)]
    log.info("running %s", " ".join(command))
    started = time.monotonic()
    with open(folder / "stdout.txt", "wb") as out, open(folder / "stderr.txt", "wb") as err:
        process = subprocess.Popen(command, stdout=out, stderr=err, env=isolated_env(folder), cwd=folder)
        try:
            result.returncode = process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            result.failures.append(f"the executable did not exit within {timeout_s:.0f} s")
    output = "\n".join(
        p.read_text(encoding="utf-8", errors="replace")
        for p in [folder / "stdout.txt", folder / "stderr.txt", *sorted((folder / "logs").glob("*.log"))]
        if p.is_file()
    )
    (folder / "all-output.txt").write_text(output, encoding="utf-8")
    result.startup_s = _seconds_to(output, STARTED_LINE, started)
    result.first_frame_s = _seconds_to(output, FIRST_FRAME_LINE, started)
    if STARTED_LINE not in output:
        result.failures.append(f"the startup line {STARTED_LINE!r} never appeared")
    for pattern in FAILURE_PATTERNS:
        for line in output.splitlines():
            if pattern in line:
                result.failures.append(f"output shows {pattern!r}: {line.strip()[:300]}")
                break
    if result.returncode not in (0, None):
        result.failures.append(f"exit status {result.returncode}")
    check_csv(csv_path, expect_rows=faces is not None, result=result)
    return result


def _seconds_to(output: str, marker: str, started_monotonic: float) -> float | None:
    """Seconds from start to the log-file line holding ``marker``, from its timestamp."""
    wall_start = time.time() - (time.monotonic() - started_monotonic)
    for line in output.splitlines():
        if marker in line:
            stamp = re.match(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3})", line)
            if stamp:
                seconds = time.mktime(time.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S"))
                return seconds + int(stamp.group(2)) / 1000 - wall_start
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("executable", nargs="?", type=Path, default=default_executable(),
                        help="the built executable (default: %(default)s)")
    parser.add_argument("--seconds", type=float, default=20.0,
                        help="--exit-after given to the app (long enough for two analysis steps on a busy machine)")
    parser.add_argument("--timeout", type=float, default=180.0, help="kill the app after this many seconds")
    parser.add_argument("--keep", type=Path, help="run in this folder and keep it (video, CSV, logs)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="smoke_test: %(message)s")
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        result = run_smoke_test(args.executable, args.seconds, args.timeout, args.keep.resolve())
    else:
        with tempfile.TemporaryDirectory(prefix="fermonitor-smoke-") as tmp:
            result = run_smoke_test(args.executable, args.seconds, args.timeout, Path(tmp))
    timing = lambda s: "never" if s is None else f"{s:.1f} s"  # noqa: E731
    log.info("exit status %s; startup line after %s; first analysed frame after %s; %d CSV rows, %d people",
             result.returncode, timing(result.startup_s), timing(result.first_frame_s), result.rows, result.people)
    for failure in result.failures:
        log.error("FAIL: %s", failure)
    if not result.failures:
        log.info("PASS")
    return 1 if result.failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
