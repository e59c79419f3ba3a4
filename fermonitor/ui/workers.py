"""Capture and analysis workers: each runs a loop on its own QThread and talks through signals.

The capture worker opens its source inside its thread, paces a video to its own clock and writes
every frame into one :class:`LatestFrameSlot` (newest wins) for the analysis, and into another for
the video pane, which the window takes at its paint rate: a stalled UI holds one frame, never a
queue of them. The analysis worker loads the model in
its thread, takes the newest frame at the analysis rate, runs :meth:`AnalysisWorker.step` (a plain
method tests call directly) and emits one frozen ``FrameResult`` per step.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal, Slot

from fermonitor.core.errors import one_line
from fermonitor.core.results import Frame, FrameResult
from fermonitor.ui.frame_slot import LatestFrameSlot

log = logging.getLogger(__name__)

MAX_CAPTURE_FPS = 30.0  # screens and cameras faster than this only cost CPU
# Failures users cause or meet (bad source, camera gone, no model, unwritable CSV): one log line.
# Anything else is a bug and is logged with its traceback.
EXPECTED_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError)
SLOT_WAIT_S = 0.1  # how long a worker waits for a frame before checking its stop flag again
THREAD_JOIN_TIMEOUT_MS = 5000


class CaptureWorker(QObject):
    """Reads a frame source in its own thread into the latest-frame slot.

    Parameters
    ----------
    open_source
        Builds and opens the source (called inside the worker's thread): returns an object with
        ``read() -> Frame | None`` and ``close()``.
    slot
        Where frames go.
    pace
        Deliver frames no faster than their own timestamps (a video file plays in real time); a
        source with ``read_from(t)`` also skips the frames that fall behind the wall clock.
    start_gate
        When given, the source opens at once but frames flow only once the gate is set (the
        model has loaded): a video then plays from its start, and a live source's clock
        (``restart_clock()``) starts with the session's.
    """

    opened = Signal(str)
    ended = Signal()
    errored = Signal(str)
    finished = Signal()

    def __init__(self, open_source: Callable[[], Any], slot: LatestFrameSlot, pace: bool = True,
                 start_gate: threading.Event | None = None, display: LatestFrameSlot | None = None) -> None:
        super().__init__()
        self._open_source = open_source
        self._slot = slot
        self._display = display
        self._pace = pace
        self._start_gate = start_gate
        self._stop = threading.Event()
        self.frames_read = 0

    def request_stop(self) -> None:
        self._stop.set()

    @Slot()
    def run(self) -> None:
        source = None
        try:
            source = self._open_source()
            self.opened.emit(str(getattr(source, "description", "source")))
            if self._wait_for_gate():
                if hasattr(source, "restart_clock"):
                    source.restart_clock()
                self._loop(source)
        except Exception as exc:  # reported to the window and logged
            _log_failure("capture", exc)
            self.errored.emit(one_line(exc))
        finally:
            if source is not None:
                try:
                    source.close()
                except Exception:  # closing a broken device must not hide the first error
                    log.exception("closing the source failed")
            self._slot.close()
            self.finished.emit()

    def _wait_for_gate(self) -> bool:
        """Wait until the start gate is set; False when stopped first."""
        while self._start_gate is not None and not self._start_gate.wait(SLOT_WAIT_S):
            if self._stop.is_set():
                return False
        return not self._stop.is_set()

    def _loop(self, source: Any) -> None:
        first_t: float | None = None
        start = time.monotonic()
        last_read = 0.0
        # Keep to a video's own clock: frames it has passed are skipped undecoded, so a video
        # faster than MAX_CAPTURE_FPS still plays in real time (newest frame wins).
        keep_to_clock = self._pace and hasattr(source, "read_from")
        while not self._stop.is_set():
            wait = last_read + 1.0 / MAX_CAPTURE_FPS - time.monotonic()
            if wait > 0 and self._stop.wait(wait):
                return
            if keep_to_clock and first_t is not None:
                frame = source.read_from(first_t + (time.monotonic() - start))
            else:
                frame = source.read()
            last_read = time.monotonic()
            if frame is None:
                log.info("source ended after %d frames", self.frames_read)
                self.ended.emit()
                return
            self.frames_read += 1
            if self._pace:
                if first_t is None:
                    first_t, start = frame.t_seconds, time.monotonic()
                due = start + (frame.t_seconds - first_t)
                wait = due - time.monotonic()
                if wait > 0 and self._stop.wait(wait):
                    return
            self._slot.put(frame)
            if self._display is not None:
                self._display.put(frame)


class AnalysisWorker(QObject):
    """Loads the pipeline in its own thread and analyses the newest frame at ``rate_hz``.

    Parameters
    ----------
    open_pipeline
        Called in the worker's thread: returns ``(pipeline, writer)``; the pipeline has
        ``process(frame) -> FrameResult``, the writer ``write(result, names)`` and ``close()``
        (``None``: results are not written).
    slot
        Where the capture worker leaves frames.
    rate_hz
        Analysis steps per second; 0 or less analyses as fast as possible.
    """

    pipeline_ready = Signal(object)
    frame_processed = Signal(object)
    errored = Signal(str)
    finished = Signal()

    def __init__(self, open_pipeline: Callable[[], tuple[Any, Any]], slot: LatestFrameSlot,
                 rate_hz: float) -> None:
        super().__init__()
        self._open_pipeline = open_pipeline
        self._slot = slot
        self._interval_s = 1.0 / rate_hz if rate_hz > 0 else 0.0
        self._stop = threading.Event()
        self._paused = threading.Event()
        self._step_lock = threading.Lock()
        self._names_lock = threading.Lock()
        self._names: dict[int, str] = {}
        self.pipeline: Any = None
        self.writer: Any = None
        self.csv_opened = False  # whether open_pipeline gave a writer
        self.csv_failed = False  # whether writing or closing it failed: rows after that are missing
        self.steps = 0

    def request_stop(self) -> None:
        self._stop.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def set_paused(self, paused: bool) -> None:
        """While paused, frames are taken and thrown away: nothing is analysed or written.

        Pausing waits for a step under way, so no result is emitted after this returns.
        """
        if paused:
            self._paused.set()
            with self._step_lock:  # a step already under way finishes before this returns
                pass
        else:
            self._paused.clear()

    def set_name(self, person_id: int, name: str) -> None:
        """Name a person from now on (in the CSV too); an empty name goes back to the anonymous id."""
        with self._names_lock:
            if name:
                self._names[person_id] = name
            else:
                self._names.pop(person_id, None)

    def names(self) -> dict[int, str]:
        with self._names_lock:
            return dict(self._names)

    def open(self) -> None:
        """Load the model and open the session writer (in the calling thread)."""
        self.pipeline, self.writer = self._open_pipeline()
        self.csv_opened = self.writer is not None
        self.pipeline_ready.emit(self.pipeline)

    def step(self, frame: Frame, dropped: int = 0) -> FrameResult:
        """Analyse one frame, write it and return the result with latency and drops filled in."""
        result = self.pipeline.process(frame, dropped)
        if self.writer is not None:
            try:
                self.writer.write(result, self.names())
            except Exception:
                self.csv_failed = True
                raise
        self.steps += 1
        if self.steps == 1:
            # The packaging smoke test measures start-up to this line.
            log.info("first frame analysed: %d faces", len(result.faces))
        return result

    def close(self) -> None:
        """Close the writer: the CSV is complete after this."""
        writer, self.writer = self.writer, None
        if writer is not None:
            try:
                writer.close()
            except Exception:
                self.csv_failed = True
                raise

    @Slot()
    def run(self) -> None:
        try:
            self.open()
            self._loop()
        except Exception as exc:  # reported to the window and logged
            _log_failure("analysis", exc)
            self.errored.emit(one_line(exc))
        finally:
            try:
                self.close()
            except Exception as exc:
                log.exception("closing the session file failed")
                self.errored.emit(one_line(exc))
            self.finished.emit()

    def _loop(self) -> None:
        next_due = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            if now < next_due:
                if self._stop.wait(next_due - now):
                    return
                # frames overwritten while we waited on purpose were never wanted: not drops
                self._slot.forget_dropped()
            frame, dropped = self._slot.take(SLOT_WAIT_S)
            if frame is None:
                if self._slot.closed:
                    return
                continue
            with self._step_lock:
                if self._paused.is_set():
                    continue
                next_due = max(next_due + self._interval_s, time.monotonic())
                self.frame_processed.emit(self.step(frame, dropped))


def _log_failure(what: str, exc: BaseException) -> None:
    if isinstance(exc, EXPECTED_ERRORS):
        log.warning("%s stopped: %s", what, one_line(exc))
    else:
        log.error("%s failed", what, exc_info=exc)
