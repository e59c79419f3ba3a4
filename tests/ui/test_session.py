"""A live session in the window on a real video of real FER faces: timelines, CSV, rename, stop, close."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from ui_helpers import SESSION_TIMEOUT_MS, make_window, read_rows

from fermonitor.core.classifier import load_classifier
from fermonitor.core.session import CSV_COLUMNS, session_json_path
from fermonitor.ui import session_controller
from fermonitor.ui.main_window import class_png_path


def test_main_window_builds_with_its_feature_widgets(qtbot: object, tmp_path: Path, ui_checkpoint: Path) -> None:
    window = make_window(qtbot, tmp_path, "video:lecture.mp4", ui_checkpoint)
    assert window.controls.start_action.isEnabled()
    assert not window.controls.stop_action.isEnabled()
    assert "video:lecture.mp4" in window.controls.source_label.text()
    assert window.status.state_label.text().endswith("Not analysing")
    assert window.message() == ""  # the model file given exists
    assert window.timeline.rows == {}


def test_a_session_fills_timelines_and_csv_and_a_rename_reaches_the_csv(
        qtbot: object, tmp_path: Path, ui_checkpoint: Path, face_video: Path) -> None:
    window = make_window(qtbot, tmp_path, f"video:{face_video}", ui_checkpoint, show_summary=True)
    csv_path = tmp_path / "out" / "session.csv"
    csv_path.parent.mkdir()
    assert window.start_session(csv_path)
    assert "Analysing" in window.status.state_label.text() or window.status.state == "loading"
    qtbot.waitUntil(lambda: len(window.store) >= 4 and len(window.store.person_ids()) >= 2,
                    timeout=SESSION_TIMEOUT_MS)
    assert window.status.state == "analysing"
    assert window.video_view.shown_frame_index is not None
    first = window.store.person_ids()[0]
    window.timeline.refresh(window.store, force=True)
    window.timeline.rename_person(first, "Ada")
    assert window.timeline.rows[first].name_label.text() == "Ada"
    steps_at_rename = len(window.store)
    qtbot.waitUntil(lambda: len(window.store) >= steps_at_rename + 3, timeout=SESSION_TIMEOUT_MS)

    assert window.stop_session()
    assert not window.controller.threads_running()
    assert window.status.state == "stopped"

    header, rows = read_rows(csv_path)
    assert tuple(header) == CSV_COLUMNS
    assert len({row["person_id"] for row in rows}) >= 2
    named = [row for row in rows if row["person_id"] == str(first)]
    assert named[0]["person_name"] == ""
    assert named[-1]["person_name"] == "Ada"
    described = json.loads(session_json_path(csv_path).read_text(encoding="utf-8"))
    assert described["end"]

    row = window.timeline.rows[first]
    assert row.shown_points == len(window.store.person_series(first).t) >= len(named)
    xs, ys = row.expression_curves[0].getData()
    assert xs is not None and len(xs) == row.shown_points
    _, shares = window.timeline.class_expression_curves[0].getData()
    assert shares is not None and len(shares) == len(window.store)
    assert class_png_path(csv_path).stat().st_size > 1000
    assert window.summary_dialog is not None and window.summary_dialog.isVisible()
    table = window.summary_dialog.table
    names = {table.item(r, 0).text() for r in range(table.rowCount())}
    assert "Ada" in names


def test_pause_stops_writing_and_resume_continues(qtbot: object, tmp_path: Path, ui_checkpoint: Path,
                                                  face_video: Path) -> None:
    window = make_window(qtbot, tmp_path, f"video:{face_video}", ui_checkpoint)
    assert window.start_session(tmp_path / "paused.csv")
    qtbot.waitUntil(lambda: len(window.store) >= 2, timeout=SESSION_TIMEOUT_MS)
    window.controls.pause_action.trigger()
    assert window.status.state == "paused"
    steps = len(window.store)
    qtbot.wait(1500)
    assert len(window.store) == steps
    window.controls.pause_action.trigger()
    assert window.status.state == "analysing"
    qtbot.waitUntil(lambda: len(window.store) > steps, timeout=SESSION_TIMEOUT_MS)
    assert window.stop_session()


def test_hide_show_and_enlarge_a_person(qtbot: object, tmp_path: Path, ui_checkpoint: Path, face_video: Path) -> None:
    window = make_window(qtbot, tmp_path, f"video:{face_video}", ui_checkpoint)
    assert window.start_session(tmp_path / "rows.csv")
    qtbot.waitUntil(lambda: len(window.store.person_ids()) >= 2, timeout=SESSION_TIMEOUT_MS)
    assert window.stop_session()
    timeline = window.timeline
    timeline.refresh(window.store, force=True)
    pid = window.store.person_ids()[0]
    row = timeline.rows[pid]
    height = row.height()
    timeline.on_row_clicked(pid)
    assert row.enlarged and row.maximumHeight() > height
    timeline.set_person_visible(pid, False)
    assert row.isHidden() and pid not in timeline.visible_people()
    timeline.set_person_visible(pid, True)
    assert not row.isHidden()


def test_closing_the_window_joins_every_thread(qtbot: object, tmp_path: Path, ui_checkpoint: Path,
                                               face_video: Path) -> None:
    window = make_window(qtbot, tmp_path, f"video:{face_video}", ui_checkpoint)
    csv_path = tmp_path / "closed.csv"
    assert window.start_session(csv_path)
    qtbot.waitUntil(lambda: len(window.store) >= 1, timeout=SESSION_TIMEOUT_MS)
    threads = list(window.controller.threads)
    assert threads and all(thread.isRunning() for thread in threads)
    window.close()
    assert not any(thread.isRunning() for thread in threads)
    assert csv_path.read_text(encoding="utf-8").startswith("timestamp,")
    assert json.loads(session_json_path(csv_path).read_text(encoding="utf-8"))["end"]


SLOW_LOAD_S = 4.0


def test_a_video_is_analysed_from_its_start_however_long_the_model_takes_to_load(
        qtbot: object, tmp_path: Path, ui_checkpoint: Path, face_video: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def slow_load(*args: object, **kwargs: object) -> object:
        time.sleep(SLOW_LOAD_S)
        return load_classifier(*args, **kwargs)

    monkeypatch.setattr(session_controller, "load_classifier", slow_load)
    window = make_window(qtbot, tmp_path, f"video:{face_video}", ui_checkpoint)
    csv_path = tmp_path / "from-start.csv"
    assert window.start_session(csv_path)
    qtbot.waitUntil(lambda: len(window.store) >= 2, timeout=SESSION_TIMEOUT_MS)
    assert window.stop_session()
    # Before, the video played while the model loaded: the first step came SLOW_LOAD_S or more in.
    assert window.store.class_series().t[0] < 1.0
    _, rows = read_rows(csv_path)
    assert float(rows[0]["t_seconds"]) < SLOW_LOAD_S / 2  # a face needs two steps to become a person


@pytest.mark.parametrize("bad_source", ["video:", "nonsense"])
def test_a_malformed_source_is_shown_and_nothing_starts(qtbot: object, tmp_path: Path, ui_checkpoint: Path,
                                                        bad_source: str) -> None:
    window = make_window(qtbot, tmp_path, bad_source, ui_checkpoint)
    assert not window.start_session(tmp_path / "never.csv")
    assert "source" in window.message()
    assert not window.controller.running
    assert not (tmp_path / "never.csv").exists()


def test_a_csv_path_that_is_the_video_or_a_link_to_it_is_refused_and_the_video_kept(
        qtbot: object, tmp_path: Path, ui_checkpoint: Path, face_video: Path) -> None:
    before = face_video.read_bytes()
    window = make_window(qtbot, tmp_path, f"video:{face_video}", ui_checkpoint)
    assert not window.start_session(face_video)
    assert window.message() == f"CSV file {face_video} is the video itself; choose another name for the CSV."
    assert not window.controller.running and window.failure
    hard_link = tmp_path / "hard.csv"
    os.link(face_video, hard_link)  # the same file by another name: writing it would truncate the video
    assert not window.start_session(hard_link)
    assert window.message() == f"CSV file {hard_link} is a link to the video {face_video}; choose another name for the CSV."
    assert not window.controller.running and window.failure
    assert face_video.read_bytes() == before


def test_a_source_that_fails_to_open_leaves_an_existing_csv_alone(qtbot: object, tmp_path: Path,
                                                                  ui_checkpoint: Path) -> None:
    # The CSV is created only once the source is open: an earlier session's file at that path stays.
    csv_path = tmp_path / "earlier.csv"
    csv_path.write_text("timestamp,earlier rows\n1,2\n", encoding="utf-8")
    window = make_window(qtbot, tmp_path, f"video:{tmp_path / 'missing.mp4'}", ui_checkpoint)
    assert window.start_session(csv_path)
    qtbot.waitUntil(lambda: not window.controller.running and not window.controller.threads_running(),
                    timeout=SESSION_TIMEOUT_MS)
    assert csv_path.read_text(encoding="utf-8") == "timestamp,earlier rows\n1,2\n"
    assert not session_json_path(csv_path).exists()
    assert "does not exist" in window.message() and "CSV is complete" not in window.message()
