"""Faults during a session: a clear message in the window, the CSV complete, the app still running."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from ui_helpers import SESSION_TIMEOUT_MS, gallery_image, make_window, read_rows

from fermonitor.core import resources
from fermonitor.core.classifier import MODEL_HELP
from fermonitor.core.results import Frame
from fermonitor.core.session import SessionError, SessionWriter, session_json_path
from fermonitor.core.sources import FrameSource, SourceError, register_source, unregister_source
from fermonitor.core.timeline import ABSENT_CODE
from fermonitor.ui import main_window

FAKE_KIND = "uitestcam"
FRAMES_BEFORE_UNPLUG = 25


class FakeCamera(FrameSource):
    """Stands in for camera hardware that is not here: one slow to open (until ``opening`` is set),
    or one unplugged after a number of frames (it then fails the way the webcam source does). A
    camera that cannot open needs no stand-in: the real webcam source at an index with no camera."""

    faces: np.ndarray | None = None
    opening = threading.Event()

    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour
        self.description = f"{FAKE_KIND}:{behaviour}"
        self._index = 0

    def open(self) -> None:
        if self.behaviour == "slow":
            FakeCamera.opening.wait(SESSION_TIMEOUT_MS / 1000)

    def read(self) -> Frame | None:
        if self._index >= FRAMES_BEFORE_UNPLUG:
            raise SourceError("camera at index 7 stopped delivering frames (unplugged or in use?)")
        assert FakeCamera.faces is not None
        frame = Frame(image=gallery_image(FakeCamera.faces), t_seconds=self._index / 10, index=self._index,
                      wall_time=datetime.now().astimezone())
        self._index += 1
        return frame

    def close(self) -> None:
        self._index = 0


@pytest.fixture()
def fake_camera(detectable_faces: np.ndarray) -> Iterator[type[FakeCamera]]:
    """The stand-in camera, registered for one test only so other tests see the real registry."""
    FakeCamera.faces = detectable_faces[:2]
    FakeCamera.opening.clear()
    register_source(FAKE_KIND)(FakeCamera)
    yield FakeCamera
    FakeCamera.opening.set()  # a slow camera left opening must not hold its thread
    unregister_source(FAKE_KIND)


def run_until_stopped(qtbot: object, window, csv_path: Path) -> None:
    """Start a session writing ``csv_path`` and wait until it has stopped on its own (a fault)."""
    assert window.start_session(csv_path)
    qtbot.waitUntil(lambda: not window.controller.running, timeout=SESSION_TIMEOUT_MS)


def test_a_video_that_ends_ends_the_session_cleanly(qtbot: object, tmp_path: Path, ui_checkpoint: Path,
                                                    short_video: Path) -> None:
    window = make_window(qtbot, tmp_path, f"video:{short_video}", ui_checkpoint)
    csv_path = tmp_path / "short.csv"
    run_until_stopped(qtbot, window, csv_path)
    assert "The source ended" in window.message()
    assert str(csv_path) in window.message()
    assert not window.controller.threads_running()
    _, rows = read_rows(csv_path)
    assert rows, "a 2-second video of two faces gives rows"
    assert json.loads(session_json_path(csv_path).read_text(encoding="utf-8"))["end"]
    assert window.isVisible() and window.controls.start_action.isEnabled()
    # the app keeps running: the same source can be analysed again
    assert window.start_session(tmp_path / "again.csv")
    qtbot.waitUntil(lambda: not window.controller.running, timeout=SESSION_TIMEOUT_MS)


def test_a_class_picture_or_settings_file_that_cannot_be_written_is_said_and_loses_nothing(
        qtbot: object, tmp_path: Path, ui_checkpoint: Path, short_video: Path) -> None:
    window = make_window(qtbot, tmp_path, f"video:{short_video}", ui_checkpoint)
    csv_path = tmp_path / "short.csv"
    main_window.class_png_path(csv_path).mkdir()  # a folder where the picture would go
    run_until_stopped(qtbot, window, csv_path)
    assert f"class timeline image {main_window.class_png_path(csv_path)} could not be written" in window.message()
    assert "The source ended" in window.message() and str(csv_path) in window.message()
    assert read_rows(csv_path)[1], "the rows are all there"
    (tmp_path / "settings.json").mkdir()  # a folder where the settings file would go
    changed = dataclasses.replace(window.settings, analysis=dataclasses.replace(window.settings.analysis, rate_hz=3.0))
    window.apply_settings(changed, window.source_spec)
    assert window.message().startswith(f"settings could not be saved to {tmp_path / 'settings.json'} (")
    assert window.settings.analysis.rate_hz == 3.0  # still used from the next session on


def test_a_missing_model_is_named_with_how_to_get_one(qtbot: object, tmp_path: Path, short_video: Path) -> None:
    missing = tmp_path / "nowhere.pt"
    window = make_window(qtbot, tmp_path, f"video:{short_video}", missing)
    assert "nowhere.pt does not exist" in window.message()
    assert window.start_session(tmp_path / "no_model.csv")
    qtbot.waitUntil(lambda: not window.controller.running, timeout=SESSION_TIMEOUT_MS)
    assert "nowhere.pt does not exist" in window.message()
    assert MODEL_HELP in window.message()
    assert not window.controller.threads_running()
    assert not (tmp_path / "no_model.csv").exists()
    assert window.isVisible() and window.controls.start_action.isEnabled()


def test_no_installed_model_says_so_at_start(qtbot: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             short_video: Path) -> None:
    monkeypatch.setattr(resources, "resources_dir", lambda: tmp_path / "resources")
    window = make_window(qtbot, tmp_path, f"video:{short_video}", None)
    assert "No expression model installed" in window.message()
    assert MODEL_HELP in window.message()


def test_a_camera_that_cannot_open(qtbot: object, tmp_path: Path, ui_checkpoint: Path) -> None:
    window = make_window(qtbot, tmp_path, "webcam:57", ui_checkpoint)  # the real source; no camera there
    csv_path = tmp_path / "nocam.csv"
    run_until_stopped(qtbot, window, csv_path)
    assert "no camera at index 57" in window.message()
    assert not window.controller.threads_running()
    assert window.isVisible() and window.controls.start_action.isEnabled()


def test_a_camera_unplugged_mid_session_keeps_every_row(qtbot: object, tmp_path: Path, ui_checkpoint: Path,
                                                        fake_camera: type[FakeCamera]) -> None:
    window = make_window(qtbot, tmp_path, f"{FAKE_KIND}:unplug", ui_checkpoint)
    csv_path = tmp_path / "unplugged.csv"
    run_until_stopped(qtbot, window, csv_path)
    message = window.message()
    assert "stopped delivering frames" in message
    assert f"The session's CSV is complete: {csv_path}" in message
    _, rows = read_rows(csv_path)
    seen_steps = sum(int((window.store.person_series(pid).indicator != ABSENT_CODE).sum())
                     for pid in window.store.person_ids())
    assert rows and len(rows) == seen_steps
    assert json.loads(session_json_path(csv_path).read_text(encoding="utf-8"))["end"]
    assert window.isVisible() and window.controls.start_action.isEnabled()


def test_a_csv_that_fails_part_way_is_not_called_complete(qtbot: object, tmp_path: Path, ui_checkpoint: Path,
                                                          face_video: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write = SessionWriter.write
    calls = []

    def fail_on_the_third_step(self: SessionWriter, *args: object, **kwargs: object) -> int:
        calls.append(1)
        if len(calls) == 3:
            raise SessionError(f"CSV file {self.csv_path} cannot be written (No space left on device)")
        return write(self, *args, **kwargs)

    monkeypatch.setattr(SessionWriter, "write", fail_on_the_third_step)
    window = make_window(qtbot, tmp_path, f"video:{face_video}", ui_checkpoint)
    csv_path = tmp_path / "disk-full.csv"
    run_until_stopped(qtbot, window, csv_path)
    message = window.message()
    assert "No space left on device" in message and "is complete" not in message
    assert f"The session's CSV holds the rows written before that: {csv_path}" in message
    assert window.failure


def test_an_unusable_sessions_folder_is_named_and_nothing_starts(qtbot: object, tmp_path: Path,
                                                                 ui_checkpoint: Path, face_video: Path) -> None:
    window = make_window(qtbot, tmp_path, f"video:{face_video}", ui_checkpoint)
    window.sessions_dir = tmp_path / "a-file"
    window.sessions_dir.write_text("not a folder", encoding="utf-8")
    assert not window.start_session()
    assert window.message().startswith(f"sessions folder {window.sessions_dir} cannot be created (")
    assert not window.controller.running and window.failure


def test_a_scripted_session_that_fails_exits_with_status_1(tmp_path: Path, tiny_checkpoint: Path) -> None:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "FERMONITOR_CONFIG_DIR": str(tmp_path / "config"),
           "FERMONITOR_SESSIONS_DIR": str(tmp_path / "sessions")}
    missing = tmp_path / "missing.mp4"
    done = subprocess.run([sys.executable, "-m", "fermonitor", "--source", f"video:{missing}", "--csv",
                           str(tmp_path / "o.csv"), "--exit-after", "3", "--model", str(tiny_checkpoint)],
                          env=env, capture_output=True, text=True, timeout=SESSION_TIMEOUT_MS / 1000 + 60)
    assert done.returncode == 1, done.stderr[-3000:]
    assert f"video {missing} does not exist" in done.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM cannot be sent to a process on Windows")
def test_sigterm_closes_the_app_like_its_close_button_and_the_session_files_with_it(
        tmp_path: Path, tiny_checkpoint: Path, face_video: Path) -> None:
    csv_path = tmp_path / "terminated.csv"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "FERMONITOR_CONFIG_DIR": str(tmp_path / "config"),
           "FERMONITOR_SESSIONS_DIR": str(tmp_path / "sessions")}
    child = subprocess.Popen([sys.executable, "-m", "fermonitor", "--source", f"video:{face_video}", "--csv",
                              str(csv_path), "--exit-after", "60", "--model", str(tiny_checkpoint)],
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + SESSION_TIMEOUT_MS / 1000
        while not (csv_path.is_file() and len(read_rows(csv_path)[1]) >= 2):
            if child.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the app wrote no rows before it ended or in time: {child.communicate()[1][-3000:]}")
            time.sleep(0.1)
        child.send_signal(signal.SIGTERM)
        _, err = child.communicate(timeout=SESSION_TIMEOUT_MS / 1000)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert child.returncode == 128 + signal.SIGTERM, err[-3000:]
    assert err.splitlines()[-1] == "fermonitor: terminated by SIGTERM"
    header, rows = read_rows(csv_path)
    described = json.loads(session_json_path(csv_path).read_text(encoding="utf-8"))
    assert described["end"] is not None and described["rows"] == len(rows) >= 2
    assert csv_path.read_text(encoding="utf-8").endswith("\n")
    assert float(rows[-1]["t_seconds"]) < 19.0  # ended by the signal, not by the 20-second video


def test_a_stop_while_the_camera_is_still_opening_writes_no_csv(qtbot: object, tmp_path: Path, ui_checkpoint: Path,
                                                                fake_camera: type[FakeCamera]) -> None:
    window = make_window(qtbot, tmp_path, f"{FAKE_KIND}:slow", ui_checkpoint)
    csv_path = tmp_path / "stopped-early.csv"
    assert window.start_session(csv_path)
    assert not window.controller.stop(timeout_ms=200)  # the camera is still opening: its thread goes on
    fake_camera.opening.set()
    qtbot.waitUntil(lambda: not window.controller.threads_running(), timeout=SESSION_TIMEOUT_MS)
    assert not csv_path.exists() and not session_json_path(csv_path).exists()
    assert not window.controller.csv_opened


def test_a_close_while_a_camera_hangs_waits_once_then_closes_at_the_limit(
        qtbot: object, tmp_path: Path, ui_checkpoint: Path, fake_camera: type[FakeCamera],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(main_window, "CLOSE_WAIT_LIMIT_S", 3.0)
    window = make_window(qtbot, tmp_path, f"{FAKE_KIND}:slow", ui_checkpoint)
    assert window.start_session(tmp_path / "hung.csv")
    stops = []
    stop = window.controller.stop
    monkeypatch.setattr(window.controller, "stop", lambda timeout_ms=200: stops.append(1) or stop(timeout_ms))
    window.close()  # the camera never finishes opening: the window stays, saying why
    assert window.isVisible() and window.message().startswith("Closing once the analysis has stopped")
    window.close()  # a second close while waiting does not block in stop() again
    assert window.isVisible() and stops == [1]
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=SESSION_TIMEOUT_MS)  # closed at the limit
    assert window.controller.threads_running()
    fake_camera.opening.set()
    qtbot.waitUntil(lambda: not window.controller.threads_running(), timeout=SESSION_TIMEOUT_MS)


SLOW_MODEL_APP = """
import sys, time
from fermonitor.ui import session_controller
load = session_controller.load_classifier
def slow_load(*args, **kwargs):
    time.sleep(10)
    return load(*args, **kwargs)
session_controller.load_classifier = slow_load
from fermonitor.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_closing_the_app_while_the_model_loads_ends_cleanly_once_it_has_loaded(
        tmp_path: Path, tiny_checkpoint: Path, face_video: Path) -> None:
    # The window closes (--exit-after 1) while the model is still loading, which cannot be cut short.
    # The model is a real VGG19 checkpoint: the test models registered in this process are not there.
    csv_path = tmp_path / "never-started.csv"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "FERMONITOR_CONFIG_DIR": str(tmp_path / "config"),
           "FERMONITOR_SESSIONS_DIR": str(tmp_path / "sessions")}
    done = subprocess.run([sys.executable, "-c", SLOW_MODEL_APP, "--source", f"video:{face_video}",
                           "--csv", str(csv_path), "--exit-after", "1", "--model", str(tiny_checkpoint)],
                          env=env, capture_output=True, text=True, timeout=SESSION_TIMEOUT_MS / 1000 + 60)
    assert done.returncode == 0, done.stderr[-3000:]  # was 134: Qt aborts on a thread destroyed while running
    assert not csv_path.exists()  # stopped before the model loaded: no session was written
