"""Ctrl-C in the terminal that started the app, on a real X server: the session ends cleanly, the app quits."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from ui_helpers import SESSION_TIMEOUT_MS, read_rows

from fermonitor.core.session import session_json_path
from fermonitor.logging_setup import LOG_FILE_NAME
from fermonitor.ui.app import STARTED_LINE
from fermonitor.ui.first_run import NOTICE_ACKNOWLEDGED_KEY
from fermonitor.ui.main_window import class_png_path

pytestmark = [pytest.mark.xvfb,
              pytest.mark.skipif(sys.platform == "win32", reason="a console's Ctrl-C cannot be sent to one process")]

QUIT_TIMEOUT_S = 60  # from Ctrl-C to the process gone; a hang or a modal dialog fails here
INTERRUPTED_STATUS = 130  # 128 + SIGINT, what a shell reports for a Ctrl-C


def app_env(tmp_path: Path, display: str) -> dict[str, str]:
    return {**os.environ, "DISPLAY": display, "QT_QPA_PLATFORM": "xcb",
            "FERMONITOR_CONFIG_DIR": str(tmp_path / "config"), "FERMONITOR_SESSIONS_DIR": str(tmp_path / "sessions")}


@contextmanager
def ctrl_c_not_ignored() -> Iterator[None]:
    """Children started inside get Ctrl-C's default action even where this test run ignores SIGINT (a
    script's background job), as a terminal's foreground process has it: a caught signal is reset at exec."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def start_app(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    with ctrl_c_not_ignored():
        return subprocess.Popen([sys.executable, "-m", "fermonitor", *args], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)


def stderr_lines(child: subprocess.Popen[str]) -> queue.Queue[str | None]:
    """The child's stderr, line by line as it comes (None at its end), read in a thread so that it never fills."""
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert child.stderr is not None
        for line in child.stderr:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    return lines


def wait_for_line(lines: queue.Queue[str | None], wanted: str, seen: list[str]) -> None:
    deadline = time.monotonic() + SESSION_TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=1.0)
        except queue.Empty:
            continue
        if line is None:
            pytest.fail(f"the app ended before logging {wanted!r}: {seen[-40:]}")
        seen.append(line)
        if wanted in line:
            return
    pytest.fail(f"the app did not log {wanted!r} in time: {seen[-40:]}")


def wait_until_gone(child: subprocess.Popen[str], lines: queue.Queue[str | None], seen: list[str]) -> None:
    try:
        child.wait(timeout=QUIT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
        pytest.fail(f"the app still ran {QUIT_TIMEOUT_S} s after Ctrl-C (a dialog, a hang?): {seen[-40:]}")
    while (line := lines.get(timeout=10)) is not None:
        seen.append(line)


def test_ctrl_c_ends_the_session_like_the_close_button_and_quits(
        tmp_path: Path, tiny_checkpoint: Path, face_video: Path, xvfb_display: str) -> None:
    csv_path = tmp_path / "interrupted.csv"
    child = start_app(["--source", f"video:{face_video}", "--csv", str(csv_path), "--exit-after", "120",
                       "--model", str(tiny_checkpoint)], app_env(tmp_path, xvfb_display))
    lines, seen = stderr_lines(child), []
    try:
        deadline = time.monotonic() + SESSION_TIMEOUT_MS / 1000
        while not (csv_path.is_file() and len(read_rows(csv_path)[1]) >= 2):
            if child.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the app wrote no rows before it ended or in time: {seen[-40:]}")
            time.sleep(0.1)
        child.send_signal(signal.SIGINT)
        wait_until_gone(child, lines, seen)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    log = (Path(os.environ["FERMONITOR_LOG_DIR"]) / LOG_FILE_NAME).read_text(encoding="utf-8")
    assert child.returncode == INTERRUPTED_STATUS, seen[-40:]
    assert seen[-1] == "fermonitor: interrupted"
    for said in ("\n".join(seen), log):  # no error dialog: the excepthook that shows it logs every error
        assert "KeyboardInterrupt" not in said and "uncaught exception" not in said and "Traceback" not in said
    header, rows = read_rows(csv_path)
    described = json.loads(session_json_path(csv_path).read_text(encoding="utf-8"))
    assert described["end"] is not None and described["rows"] == len(rows) >= 2
    assert csv_path.read_text(encoding="utf-8").endswith("\n")
    assert float(rows[-1]["t_seconds"]) < 19.0  # ended by Ctrl-C, not by the 20-second video
    assert class_png_path(csv_path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # the class chart, saved


def test_ctrl_c_while_the_first_run_notice_is_up_quits(tmp_path: Path, xvfb_display: str) -> None:
    # A new config folder: the notice was never acknowledged, so it shows (--exit-after would skip it).
    child = start_app(["--verbose"], app_env(tmp_path, xvfb_display))
    lines, seen = stderr_lines(child), []
    try:
        wait_for_line(lines, "showing the first-run notice", seen)
        time.sleep(0.5)  # the dialog's event loop is running
        child.send_signal(signal.SIGINT)
        wait_until_gone(child, lines, seen)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == INTERRUPTED_STATUS, seen[-40:]
    assert seen[-1] == "fermonitor: interrupted"
    said = "\n".join(seen)
    assert STARTED_LINE not in said and "KeyboardInterrupt" not in said and "Traceback" not in said
    settings = (tmp_path / "config" / "fermonitor.ini")
    assert not settings.is_file() or NOTICE_ACKNOWLEDGED_KEY.split("/")[1] not in settings.read_text()
