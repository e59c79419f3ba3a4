"""One analysis session: builds the source, pipeline and CSV writer, runs the two workers, ends cleanly."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QCoreApplication, QEvent, QObject, Qt, QThread, Signal, Slot

from fermonitor.core.checkpoint import CheckpointError
from fermonitor.core.classifier import MODEL_HELP, load_classifier
from fermonitor.core.detection import detector_from_settings
from fermonitor.core.pipeline import Pipeline
from fermonitor.core.results import Frame
from fermonitor.core.session import SessionWriter, check_not_the_video
from fermonitor.core.settings import Settings
from fermonitor.core.sources import FrameSource, VideoSource, parse_source
from fermonitor.ui.frame_slot import LatestFrameSlot
from fermonitor.ui.workers import THREAD_JOIN_TIMEOUT_MS, AnalysisWorker, CaptureWorker

log = logging.getLogger(__name__)

SOURCE_POLL_S = 0.05  # how often the analysis thread looks whether the capture worker gave up


@dataclass(frozen=True)
class SessionPlan:
    """What a session analyses and where it writes."""

    source_spec: str
    csv_path: Path
    settings: Settings
    model_path: Path | None = None  # None: the shipped model


class ModelMissingError(ValueError):
    """No usable expression model: the message says which file and how to get one."""


def open_pipeline(plan: SessionPlan, source_description: str,
                  source_is_open: Callable[[], bool] | None = None) -> tuple[Pipeline, SessionWriter | None]:
    """Load the model, build the detector and pipeline, open the CSV (runs in the analysis thread).

    ``source_is_open`` blocks until the source has opened (True) or failed to (False); the CSV
    is created only after it says True, so a source that fails leaves a file at that path as it
    was, and the writer is then None.
    """
    try:
        classifier = load_classifier(plan.model_path, device=plan.settings.analysis.device)
    except CheckpointError as exc:
        text = str(exc)
        raise ModelMissingError(text if MODEL_HELP in text else f"{text}: {MODEL_HELP}") from exc
    detector = detector_from_settings(plan.settings.analysis)
    pipeline = Pipeline(classifier, detector, plan.settings)
    if source_is_open is not None and not source_is_open():
        return pipeline, None
    writer = SessionWriter(plan.csv_path, source_description, classifier.meta, plan.settings,
                           classes=pipeline.classes, runtime=classifier.runtime)
    return pipeline, writer


class SessionController(QObject):
    """Starts, pauses and stops a session; relays worker signals to the window (queued)."""

    frame_processed = Signal(object)
    state_changed = Signal(str)  # "loading", "analysing", "paused", "stopped"
    faulted = Signal(str)
    ended = Signal(str)  # why the session ended: "stopped", "source ended", or the fault

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.plan: SessionPlan | None = None
        self.source: FrameSource | None = None
        self.capture_worker: CaptureWorker | None = None
        self.analysis_worker: AnalysisWorker | None = None
        self.threads: list[QThread] = []
        self.display_slot = LatestFrameSlot()  # the newest frame for the video pane
        self.names: dict[int, str] = {}
        self.paused = False
        self._end_reason = ""
        self._finished_workers = 0
        self._running = False

    @property
    def running(self) -> bool:
        return self._running

    def newest_frame(self) -> Frame | None:
        """The newest frame captured since the last call, if any (the video pane's, at its paint rate)."""
        return self.display_slot.take(0.0)[0]

    @property
    def csv_opened(self) -> bool:
        """Whether the last session created its CSV (not when its source failed to open)."""
        return self.analysis_worker is not None and self.analysis_worker.csv_opened

    @property
    def csv_failed(self) -> bool:
        """Whether writing the last session's CSV failed part way (its rows stop there)."""
        return self.analysis_worker is not None and self.analysis_worker.csv_failed

    def start(self, plan: SessionPlan) -> bool:
        """Start a session; False (and ``faulted``) when the source spec cannot be parsed or the CSV
        would replace the video it analyses."""
        if self._running or self.threads_running():
            raise RuntimeError("a session is already running or still stopping; stop it first")
        try:
            source = parse_source(plan.source_spec)
            if isinstance(source, VideoSource):
                check_not_the_video(plan.csv_path, source.path)
        except ValueError as exc:
            self.faulted.emit(str(exc))
            return False
        self.plan, self.source = plan, source
        self.names = {}
        self.paused = False
        self._end_reason = ""
        self._finished_workers = 0
        self._running = True
        slot = LatestFrameSlot()
        opened = threading.Event()

        def open_source() -> FrameSource:
            source.open()
            opened.set()
            return source

        def source_is_open() -> bool:  # called in the analysis thread, once ``analysis`` exists
            while not opened.wait(SOURCE_POLL_S):
                if analysis.stop_requested:  # stopped while the source was still opening: no CSV
                    return False
                if slot.closed:  # the capture worker ended, with or without opening it
                    return opened.is_set()
            return not analysis.stop_requested

        def open_analysis() -> tuple[Pipeline, SessionWriter | None]:
            opened_pipeline = open_pipeline(plan, source.description, source_is_open)
            analysis_ready.set()  # frames flow from now on: the session's time 0
            return opened_pipeline

        analysis_ready = threading.Event()
        self.display_slot = LatestFrameSlot()
        self.capture_worker = CaptureWorker(open_source, slot, start_gate=analysis_ready, display=self.display_slot)
        self.analysis_worker = AnalysisWorker(open_analysis, slot, plan.settings.analysis.rate_hz)
        capture, analysis = self.capture_worker, self.analysis_worker
        capture.ended.connect(self.on_source_ended)
        capture.errored.connect(self.on_worker_errored)
        analysis.pipeline_ready.connect(self.on_pipeline_ready)
        analysis.frame_processed.connect(self.frame_processed)
        analysis.errored.connect(self.on_worker_errored)
        self.threads = [self._start_thread(capture, "capture"), self._start_thread(analysis, "analysis")]
        self.state_changed.emit("loading")
        log.info("session started: %s -> %s", plan.source_spec, plan.csv_path)
        return True

    def _start_thread(self, worker: CaptureWorker | AnalysisWorker, name: str) -> QThread:
        thread = QThread(self)
        thread.setObjectName(name)
        worker.moveToThread(thread)
        thread.started.connect(worker.run)
        # direct: the thread must quit even while the GUI thread is blocked in stop()'s wait
        worker.finished.connect(thread.quit, Qt.ConnectionType.DirectConnection)
        worker.finished.connect(self.on_worker_finished)
        thread.start()
        return thread

    def set_paused(self, paused: bool) -> None:
        if not self._running or self.analysis_worker is None:
            return
        self.paused = paused
        self.analysis_worker.set_paused(paused)
        if paused:  # results emitted before the pause still reach the window, none after
            QCoreApplication.sendPostedEvents(self, QEvent.Type.MetaCall)
        self.state_changed.emit("paused" if paused else "analysing")

    def rename(self, person_id: int, name: str) -> None:
        """Name a person in the window and, from the next step on, in the CSV."""
        name = name.strip()
        if name:
            self.names[person_id] = name
        else:
            self.names.pop(person_id, None)
        if self.analysis_worker is not None:
            self.analysis_worker.set_name(person_id, name)

    def stop(self, timeout_ms: int = THREAD_JOIN_TIMEOUT_MS) -> bool:
        """Stop both workers and wait for their threads; True when every thread has ended."""
        if self.capture_worker is not None:
            self.capture_worker.request_stop()
        if self.analysis_worker is not None:
            self.analysis_worker.request_stop()
        if not self._end_reason:
            self._end_reason = "stopped"
        joined = self.join(timeout_ms)
        # deliver results still queued from the workers, so the window holds every written row
        QCoreApplication.sendPostedEvents(self, QEvent.Type.MetaCall)
        self._finish()
        return joined

    def join(self, timeout_ms: int = THREAD_JOIN_TIMEOUT_MS) -> bool:
        joined = True
        for thread in self.threads:
            if not thread.wait(timeout_ms):
                log.error("thread %s did not stop within %d ms", thread.objectName(), timeout_ms)
                joined = False
        return joined

    def threads_running(self) -> bool:
        return any(thread.isRunning() for thread in self.threads)

    def _finish(self) -> None:
        if not self._running:
            return
        self._running = False
        self.state_changed.emit("stopped")
        log.info("session ended: %s", self._end_reason)
        self.ended.emit(self._end_reason)

    @Slot(object)
    def on_pipeline_ready(self, pipeline: Any) -> None:
        if not self._running:  # a worker of a session stopped while its model was loading
            return
        self.state_changed.emit("paused" if self.paused else "analysing")

    @Slot()
    def on_source_ended(self) -> None:
        if not self._end_reason:
            self._end_reason = "the source ended"

    @Slot(str)
    def on_worker_errored(self, message: str) -> None:
        if not self._end_reason or self._end_reason == "the source ended":
            self._end_reason = message
        # the other worker ends too: capture on request, analysis once the slot closes
        if self.capture_worker is not None:
            self.capture_worker.request_stop()
        self.faulted.emit(message)

    @Slot()
    def on_worker_finished(self) -> None:
        self._finished_workers += 1
        if self._finished_workers >= 2:
            self.join()
            self._finish()
