"""The app's parts on their own: notice, settings, alerts, latest-frame slot, synchronous analysis step."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import threading
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QSettings, QThread, QTimer
from PySide6.QtWidgets import QApplication, QDialog, QLabel, QStatusBar
from ui_helpers import fast_settings, gallery_image, make_window, read_rows

from fermonitor.core.checkpoint import FERPLUS_CLASSES
from fermonitor.core.results import FaceObservation, Frame, FrameResult
from fermonitor.core.session import session_json_path
from fermonitor.core.settings import AlertSettings, Settings, read_settings, settings_from_dict
from fermonitor.core.sources import VideoSource
from fermonitor.core.timeline import TimelineStore
from fermonitor.ui import app as app_module
from fermonitor.ui import first_run, status_panel
from fermonitor.ui.frame_slot import LatestFrameSlot
from fermonitor.ui.main_window import MainWindow
from fermonitor.ui.session_controller import SessionPlan, open_pipeline
from fermonitor.ui.settings_dialog import SettingsDialog
from fermonitor.ui.summary_dialog import SummaryDialog, summary_rows
from fermonitor.ui.timeline_widget import TimelineWidget
from fermonitor.ui.workers import MAX_CAPTURE_FPS, AnalysisWorker, CaptureWorker


def _frame(index: int, image: np.ndarray | None = None, t: float | None = None) -> Frame:
    return Frame(image=np.zeros((4, 4, 3), np.uint8) if image is None else image,
                 t_seconds=index * 0.1 if t is None else t, index=index, wall_time=datetime.now().astimezone())


def _result(t: float, indicators: list[str], absent: int = 0) -> FrameResult:
    faces = tuple(FaceObservation(i + 1, (0, 0, 10, 10), (1.0,) + (0.0,) * 7, "neutral", 1.0, ind)
                  for i, ind in enumerate(indicators))
    return FrameResult(0, t, datetime.now().astimezone(), (100, 100), faces,
                       absent_ids=tuple(range(100, 100 + absent)))


def test_the_newest_frame_wins_and_drops_are_counted() -> None:
    slot = LatestFrameSlot()
    for i in range(3):
        slot.put(_frame(i))
    frame, dropped = slot.take(0.0)
    assert frame is not None and frame.index == 2 and dropped == 2
    slot.put(_frame(3))
    frame, dropped = slot.take(0.0)
    assert frame.index == 3 and dropped == 0
    slot.put(_frame(4))
    slot.put(_frame(5))
    slot.forget_dropped()
    assert slot.take(0.0)[1] == 0
    assert slot.take(0.01) == (None, 0)
    slot.close()
    assert slot.closed


def test_a_video_faster_than_the_capture_cap_still_plays_in_real_time(make_face_video, fer_faces) -> None:
    images, _ = fer_faces
    video = make_face_video(images[:1], seconds=1.0, fps=2 * MAX_CAPTURE_FPS)
    source = VideoSource(video)

    def open_source() -> VideoSource:
        source.open()
        return source

    delivered: list[Frame] = []

    class RecordingSlot(LatestFrameSlot):
        def put(self, frame: Frame) -> None:
            delivered.append(frame)
            super().put(frame)

    worker = CaptureWorker(open_source, RecordingSlot())
    worker.run()  # in this thread, until the video ends
    # Frames the wall clock has passed are skipped undecoded: about half are read, over the whole video
    # (at the capture cap without skipping, all 60 would be read and the second would last two).
    assert len(delivered) == worker.frames_read <= 0.75 * 2 * MAX_CAPTURE_FPS
    assert delivered[-1].t_seconds >= 0.5
    times = [frame.t_seconds for frame in delivered]
    assert times == sorted(times)


def test_the_video_pane_gets_the_newest_frame_never_a_queue(make_face_video, fer_faces) -> None:
    images, _ = fer_faces
    video = make_face_video(images[:1], seconds=1.0, fps=20)
    source = VideoSource(video)

    def open_source() -> VideoSource:
        source.open()
        return source

    display = LatestFrameSlot()
    worker = CaptureWorker(open_source, LatestFrameSlot(), pace=False, display=display)
    worker.run()  # a UI that never took a frame while the whole video was read
    assert worker.frames_read == 20
    frame, dropped = display.take(0.0)
    assert frame is not None and frame.index == 19 and dropped == 19  # one frame held, the newest
    assert display.take(0.0) == (None, 0)


class _LiveClockSource:
    """A live source that records when its clock restarted; it ends after three frames."""

    description = "live clock"

    def __init__(self) -> None:
        self.restarted_at: float | None = None
        self.reads: list[float] = []

    def restart_clock(self) -> None:
        self.restarted_at = time.monotonic()

    def read(self) -> Frame | None:
        self.reads.append(time.monotonic())
        return _frame(len(self.reads) - 1, t=0.0) if len(self.reads) <= 3 else None

    def close(self) -> None:
        pass


class _WatchedGate(threading.Event):
    """A start gate that tells when the worker has waited at it (and found it shut) twice."""

    def __init__(self) -> None:
        super().__init__()
        self.shut_waits = 0
        self.waited_twice = threading.Event()

    def wait(self, timeout: float | None = None) -> bool:
        is_set = super().wait(timeout)
        if not is_set:
            self.shut_waits += 1
            if self.shut_waits >= 2:
                self.waited_twice.set()
        return is_set


def test_frames_flow_only_once_the_start_gate_opens_and_the_live_clock_restarts_then() -> None:
    source, gate = _LiveClockSource(), _WatchedGate()
    worker = CaptureWorker(lambda: source, LatestFrameSlot(), pace=False, start_gate=gate)
    thread = threading.Thread(target=worker.run)
    thread.start()
    assert gate.waited_twice.wait(10)  # the worker has opened the source and waits for the model
    assert source.reads == [] and source.restarted_at is None
    opened_gate_at = time.monotonic()
    gate.set()
    thread.join(10)
    assert source.restarted_at is not None and opened_gate_at <= source.restarted_at <= source.reads[0]
    assert worker.frames_read == 3


def test_a_stop_before_the_start_gate_opens_reads_nothing() -> None:
    source = _LiveClockSource()
    gate = _WatchedGate()
    worker = CaptureWorker(lambda: source, LatestFrameSlot(), pace=False, start_gate=gate)
    thread = threading.Thread(target=worker.run)
    thread.start()
    assert gate.waited_twice.wait(10)  # opened and waiting at the gate
    worker.request_stop()
    thread.join(10)
    assert not thread.is_alive() and source.reads == []


def test_a_worker_left_from_a_stopped_session_changes_nothing(qtbot: object, tmp_path: Path,
                                                              ui_checkpoint: Path) -> None:
    """A stop whose join timed out (a slow model load) leaves a thread behind: its late
    pipeline_ready must not bring the stopped session back, and no new session starts beside it."""
    window = make_window(qtbot, tmp_path, "webcam:0", ui_checkpoint)
    states: list[str] = []
    window.controller.state_changed.connect(states.append)
    window.controller.on_pipeline_ready(object())  # no session is running
    assert states == []
    release = threading.Event()

    class LeftOver(QThread):
        def run(self) -> None:
            release.wait(10)

    left_over = LeftOver()
    left_over.start()
    window.controller.threads = [left_over]
    try:
        assert window.start_session() is False
        assert "still stopping" in window.message()
        assert not window.controller.running and not (tmp_path / "sessions").exists()
    finally:
        release.set()
        assert left_over.wait(5000)


def test_the_summary_has_one_row_of_shares_per_person_by_name_or_id(qtbot: object, tmp_path: Path) -> None:
    store = TimelineStore(FERPLUS_CLASSES)
    happy = (0.2, 0.8) + (0.0,) * 6
    for step, t in enumerate((10.0, 10.5, 11.0)):
        store.append(FrameResult(step, t, datetime.now().astimezone(), (100, 100), (
            FaceObservation(1, (0, 0, 10, 10), happy, "happiness", 0.8, "positive"),
            FaceObservation(2, (20, 0, 10, 10), (1.0,) + (0.0,) * 7, "neutral", 1.0, "neutral"))))
    store.append(FrameResult(3, 11.5, datetime.now().astimezone(), (100, 100), (
        FaceObservation(1, (0, 0, 10, 10), happy, "happiness", 0.8, "positive"),), absent_ids=(2,)))
    assert summary_rows(store.summary(), {1: "Ada"}) == [
        ["Ada", "2 s", "100%", "0%", "0%", "0%", "happiness (100%)"],
        ["#2", "2 s", "0%", "75%", "0%", "25%", "neutral (100%)"],
    ]
    dialog = SummaryDialog({}, {}, tmp_path / "s.csv", None, "the source ended")
    qtbot.addWidget(dialog)
    assert dialog.table.rowCount() == 0 and "Nobody was seen in this session." in dialog.findChild(QLabel).text()


def test_the_status_bar_shows_the_rate_over_five_seconds_the_latest_latency_and_all_drops(qtbot: object) -> None:
    clock = [100.0]
    bar = QStatusBar()
    qtbot.addWidget(bar)
    panel = status_panel.StatusPanel(bar, clock=lambda: clock[0])
    for step in range(21):  # 10 s at 2 steps a second, then 3 dropped frames and 80 ms latency
        clock[0] = 100.0 + step * 0.5
        panel.add_result(dataclasses.replace(_result(clock[0], ["neutral"]), latency_s=0.08,
                                             dropped_frames=3 if step == 20 else 0))
    panel.refresh()
    assert [label.text() for label in (panel.rate_label, panel.latency_label, panel.dropped_label)] == [
        "2.0 steps/s", "latency 80 ms", "dropped 3 frames"]
    clock[0] = 200.0
    panel.add_result(_result(200.0, []))  # after a long pause only this step is in the window
    panel.refresh()
    assert panel.rate_label.text() == "0.0 steps/s"
    panel.reset()
    assert panel.dropped_label.text() == "dropped 0 frames"


def test_the_banner_shows_alerts_from_results(qtbot: object, tmp_path: Path, ui_checkpoint: Path) -> None:
    settings = fast_settings()
    settings = Settings(analysis=settings.analysis, alerts=AlertSettings(negative_share=0.5, negative_for_s=1.0))
    window = make_window(qtbot, tmp_path, "video:x.avi", ui_checkpoint, settings=settings)
    window.on_frame_processed(_result(0.0, ["negative"]))
    assert window.alert_banner.isHidden()
    window.on_frame_processed(_result(2.0, ["negative"]))
    assert not window.alert_banner.isHidden() and "negative" in window.alert_banner.text()
    window.on_frame_processed(_result(3.0, ["positive"]))
    assert window.alert_banner.isHidden()


def test_first_run_notice_covers_use_and_law_and_is_remembered(qtbot: object, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    text = " ".join(first_run.NOTICE_HTML.split())  # as shown: line breaks are spaces
    for phrase in ("facial expressions", "not read emotions or minds", "stays on this machine",
                   "No picture of anyone is stored", "nothing is downloaded", "more for some faces than for others",
                   "never to judge one person", "know about it and agree", "EU AI Act",
                   "students or staff of an education institution"):
        assert phrase in text
    settings = QSettings(str(tmp_path / "notice.ini"), QSettings.Format.IniFormat)
    assert first_run.notice_needed(settings)
    monkeypatch.setattr(first_run.FirstRunNotice, "exec", lambda self: QDialog.DialogCode.Rejected)
    assert not first_run.show_notice_if_needed(settings)
    assert first_run.notice_needed(settings)
    monkeypatch.setattr(first_run.FirstRunNotice, "exec", lambda self: QDialog.DialogCode.Accepted)
    assert first_run.show_notice_if_needed(settings)
    assert not first_run.notice_needed(QSettings(str(tmp_path / "notice.ini"), QSettings.Format.IniFormat))
    settings.setValue(first_run.NOTICE_ACKNOWLEDGED_KEY, "two")  # a damaged file: shown again, no crash
    assert first_run.notice_needed(settings)


def test_a_bad_settings_file_gives_a_clear_message_and_the_defaults(qtbot: object, tmp_path: Path,
                                                                    ui_checkpoint: Path) -> None:
    config = Path(app_module.config_dir())
    config.mkdir(parents=True)
    (config / "settings.json").write_text(json.dumps({"analysis": {"rate_hz": "fast"}}), encoding="utf-8")
    args = argparse.Namespace(source="video:x.avi", csv=None, exit_after=1.0, model=str(ui_checkpoint))
    window = app_module.create_window(args)
    qtbot.addWidget(window)
    assert "analysis.rate_hz must be a number" in window.message()
    assert "using the defaults" in window.message()
    assert window.settings == Settings()


def test_settings_dialog_rejects_a_bad_value_and_saves_a_good_one(qtbot: object, tmp_path: Path,
                                                                   ui_checkpoint: Path) -> None:
    window = make_window(qtbot, tmp_path, "video:x.avi", ui_checkpoint)
    dialog = SettingsDialog(window.settings, window.source_spec, window)
    qtbot.addWidget(dialog)
    dialog.editor("indicator", "positive").setText("happiness, neutral")
    dialog.accept()
    assert dialog.result() != QDialog.DialogCode.Accepted
    assert "indicator" in dialog.error_label.text() and "neutral" in dialog.error_label.text()
    dialog.editor("indicator", "positive").setText("happiness, surprise")
    dialog.editor("alerts", "negative_share").setValue(0.25)
    dialog.editor("analysis", "rate_hz").setValue(3.0)
    dialog.source_edit.setText("screen:1")
    dialog.accept()
    assert dialog.result() == QDialog.DialogCode.Accepted
    window.apply_settings(dialog.result_settings(), dialog.source_spec())
    saved = read_settings(tmp_path / "settings.json")
    assert saved.alerts.negative_share == 0.25 and saved.analysis.rate_hz == 3.0
    assert window.source_spec == "screen:1" and window.qsettings.value("session/source") == "screen:1"


def test_the_settings_dialog_shows_the_models_crop_margin_until_a_number_is_set(qtbot: object) -> None:
    dialog = SettingsDialog(Settings(), "webcam:0")
    qtbot.addWidget(dialog)
    margin = dialog.editor("analysis", "crop_margin")
    assert margin.text() == "the model's"
    dialog.accept()
    assert dialog.result_settings().analysis.crop_margin is None
    margin.stepUp()  # the first number above the model's is 0
    assert margin.text() == "0.00"
    margin.setValue(0.15)
    dialog.accept()
    assert dialog.result_settings().analysis.crop_margin == 0.15
    dialog.on_restore_defaults_clicked()
    assert margin.text() == "the model's"
    saved_before = SettingsDialog(settings_from_dict({"analysis": {"crop_margin": 0.0}}), "webcam:0")
    qtbot.addWidget(saved_before)
    assert saved_before.editor("analysis", "crop_margin").text() == "0.00"
    saved_before.accept()
    assert saved_before.result_settings().analysis.crop_margin == 0.0


def test_the_analysis_step_runs_synchronously(tmp_path: Path, ui_checkpoint: Path,
                                              detectable_faces: np.ndarray) -> None:
    plan = SessionPlan("video:none.avi", tmp_path / "step.csv", fast_settings(), ui_checkpoint)
    worker = AnalysisWorker(lambda: open_pipeline(plan, "video:none.avi"), LatestFrameSlot(), rate_hz=5.0)
    worker.open()
    image = gallery_image(detectable_faces[:3])
    results = [worker.step(_frame(i, image, t=i * 0.2), dropped=i) for i in range(4)]
    worker.set_name(1, "Grace")
    results.append(worker.step(_frame(4, image, t=0.8)))
    worker.close()
    assert [r.dropped_frames for r in results] == [0, 1, 2, 3, 0]
    assert len(results[-1].faces) == 3
    _, rows = read_rows(tmp_path / "step.csv")
    assert len(rows) == sum(len(r.faces) for r in results)
    assert [row["person_name"] for row in rows if row["person_id"] == "1"][-1] == "Grace"


def test_run_scripted_logs_its_start_line_writes_the_csv_and_quits(
        qtbot: object, tmp_path: Path, ui_checkpoint: Path, face_video: Path, caplog: pytest.LogCaptureFixture) -> None:
    csv_path = tmp_path / "scripted.csv"
    # --exit-after is the upper limit; the window is closed as soon as the CSV holds a row.
    args = argparse.Namespace(source=f"video:{face_video}", csv=str(csv_path), exit_after=120.0,
                              model=str(ui_checkpoint))

    def close_once_a_row_is_written() -> None:
        if csv_path.is_file() and read_rows(csv_path)[1]:
            for widget in QApplication.topLevelWidgets():
                if isinstance(widget, MainWindow):
                    widget.close()

    poll = QTimer()
    poll.timeout.connect(close_once_a_row_is_written)
    poll.start(100)
    try:
        with caplog.at_level(logging.INFO):
            status = app_module.run(args)
    finally:
        poll.stop()  # no later test's window is closed by it
    assert status == 0
    assert any(app_module.STARTED_LINE in record.getMessage() for record in caplog.records)
    header, rows = read_rows(csv_path)
    assert header[0] == "timestamp" and rows
    assert json.loads(session_json_path(csv_path).read_text(encoding="utf-8"))["end"]


def test_declining_the_first_run_notice_quits_without_a_window(qtbot: object, monkeypatch: pytest.MonkeyPatch,
                                                               tmp_path: Path) -> None:
    monkeypatch.setenv(app_module.CONFIG_DIR_ENV, str(tmp_path / "config"))
    monkeypatch.setattr(first_run.FirstRunNotice, "exec", lambda self: QDialog.DialogCode.Rejected)
    created: list[object] = []
    monkeypatch.setattr(app_module, "create_window", created.append)
    args = argparse.Namespace(source=None, csv=None, exit_after=None, model=None)
    assert app_module.run(args) == 0 and created == []


def test_an_uncaught_error_is_logged_each_time_shown_once_and_ends_the_run_with_status_1(
        qtbot: object, tmp_path: Path, ui_checkpoint: Path, short_video: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    shown: list[str] = []
    monkeypatch.setattr(app_module.QMessageBox, "critical", lambda parent, title, text: shown.append(text))

    def fail() -> None:
        raise RuntimeError("boom")

    timers = [QTimer(), QTimer()]
    for delay_ms, timer in zip((100, 200), timers, strict=True):
        timer.setSingleShot(True)
        timer.timeout.connect(fail)
        timer.start(delay_ms)
    args = argparse.Namespace(source=f"video:{short_video}", csv=str(tmp_path / "x.csv"), exit_after=1.0,
                              model=str(ui_checkpoint))
    try:
        with caplog.at_level(logging.CRITICAL, logger=app_module.log.name):
            assert app_module.run(args) == 1
    finally:
        for timer in timers:  # none fires in a later test
            timer.stop()
    assert len(shown) == 1 and shown[0].startswith("RuntimeError: boom")
    assert caplog.text.count("uncaught exception") == 2


def test_timelines_draw_only_the_chosen_window_of_a_long_session(qtbot: object) -> None:
    classes = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt")
    store = TimelineStore(classes)
    probabilities = (0.3, 0.7, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    for i in range(2 * 3600 * 2):  # two hours at two steps per second
        face = FaceObservation(1, (0, 0, 40, 40), probabilities, "happiness", 0.7, "positive")
        store.append(FrameResult(frame_index=i, t_seconds=i * 0.5, wall_time=datetime(2026, 1, 5, 9, 0),
                                 frame_size=(640, 480), faces=(face,), absent_ids=()))
    widget = TimelineWidget(classes)
    qtbot.addWidget(widget)
    widget.show()
    widget.tabs.setCurrentWidget(widget.scroll)
    widget.window_spin.setValue(2)
    widget.refresh(store)
    assert widget.rows[1].shown_points == 2 * 60 * 2 + 1  # the last two minutes, both ends included
    x_data, _ = widget.class_expression_curves[1].getData()
    assert x_data[0] == store.last_t - 120.0 and x_data[-1] == store.last_t
    widget.window_spin.setValue(10)  # a new window redraws though no step was added
    widget.refresh(store)
    assert widget.rows[1].shown_points == 10 * 60 * 2 + 1


def test_a_full_store_keeps_the_newest_step_shown_and_people_gone_leave_the_rows(qtbot: object) -> None:
    classes = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt")
    store = TimelineStore(classes, max_points=50, forget_after_s=30.0)
    widget = TimelineWidget(classes)
    qtbot.addWidget(widget)
    widget.show()
    widget.tabs.setCurrentWidget(widget.scroll)
    probabilities = (0.3, 0.7, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)

    def step(i: int) -> None:
        people = (1, 2) if i < 100 else (1,)  # person 2 leaves at 50 s
        faces = tuple(FaceObservation(pid, (60 * pid, 0, 40, 40), probabilities, "happiness", 0.7, "positive")
                      for pid in people)
        store.append(FrameResult(frame_index=i, t_seconds=i * 0.5, wall_time=datetime(2026, 1, 5, 9, 0),
                                 frame_size=(640, 480), faces=faces, absent_ids=()))

    for i in range(200):
        step(i)
        widget.refresh(store)
        x_data, _ = widget.class_expression_curves[1].getData()
        assert x_data[-1] == i * 0.5  # the newest step is drawn, also once the store holds its 50 at most
        if i == 99:
            assert sorted(widget.rows) == [1, 2]
    assert len(store) == 50
    assert sorted(widget.rows) == [1]  # 2 was gone for more than 30 s
    row_x, _ = widget.rows[1].expression_curves[1].getData()
    assert row_x[-1] == 199 * 0.5
