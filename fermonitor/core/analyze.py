"""Headless analysis of a video file into a session CSV, as fast as the machine allows."""

from __future__ import annotations

import dataclasses
import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fermonitor.core.classifier import load_classifier
from fermonitor.core.detection import detector_from_settings
from fermonitor.core.pipeline import Pipeline, PreparedStep
from fermonitor.core.results import Frame
from fermonitor.core.session import SessionWriter, check_not_the_video
from fermonitor.core.settings import Settings
from fermonitor.core.sources import VideoSource

log = logging.getLogger(__name__)

# progress(t_seconds done, duration_s or 0 when unknown)
ProgressCallback = Callable[[float, float], None]
# Offline, the faces of several steps are classified in one batch (faster per face), at most
# BATCH_STEPS steps and about BATCH_FACES faces at a time.
BATCH_FACES = 32
BATCH_STEPS = 16
PREFETCH_FRAMES = 4  # frames decoded ahead of the analysis
MAX_RATE_HZ = 1000.0  # steps per second of video; above every frame rate, and far from overflowing the step grid


@dataclass(frozen=True)
class AnalyzeSummary:
    """What one run of :func:`analyze_video` did."""

    steps: int
    rows: int
    people: int
    video_seconds: float  # time of the last analysed frame
    csv_path: Path
    duration_s: float = 0.0  # the container's length; 0 when unknown
    ended_early: bool = False  # decoding stopped well before duration_s: a cut-short or damaged file
    # seconds per stage: decode and convert (in the decoding thread, beside the rest), detection,
    # tracking, crops, classification, csv; and the run's wall-clock time
    stage_seconds: dict[str, float] = dataclasses.field(default_factory=dict)
    wall_seconds: float = 0.0


def analyze_video(path: str | Path, csv_path: str | Path, rate_hz: float | None = None,
                  detector: str | None = None, device: str | None = None, model: str | Path | None = None,
                  settings: Settings | None = None, progress: ProgressCallback | None = None) -> AnalyzeSummary:
    """Run the live pipeline over a video file and write the session CSV and JSON.

    Analysis steps fall every ``1 / rate_hz`` seconds of video time (0, 1/rate, 2/rate, ...); each
    takes the first frame at or after its time, and frames in between are skipped undecoded.

    Parameters
    ----------
    path
        The video file.
    csv_path
        The session CSV to write (its folder must exist).
    rate_hz, detector, device
        Override ``settings.analysis`` when given.
    model
        A checkpoint; ``None`` takes the shipped model.
    settings
        Defaults in code when ``None``.
    progress
        Called after every step with the video time reached and the duration.

    Raises
    ------
    SourceError
        For an unreadable video. One that stops decoding part way ends the run with every row so
        far written and ``ended_early`` set in the summary.
    CheckpointError
        For a missing, corrupt or pickled model, or one whose input size or normalisation is unusable.
    SessionError
        For a CSV path that cannot be written.
    ValueError
        For a rate outside (0, ``MAX_RATE_HZ``], or a CSV path that is the video, a link to it or
        inside it (refused before anything is written).
    """
    settings = settings if settings is not None else Settings()
    check_not_the_video(csv_path, path)
    overrides = {k: v for k, v in {"rate_hz": rate_hz, "detector": detector, "device": device}.items() if v is not None}
    if overrides:
        settings = dataclasses.replace(settings, analysis=dataclasses.replace(settings.analysis, **overrides))
    rate = settings.analysis.rate_hz
    if not 0 < rate <= MAX_RATE_HZ:  # also refuses nan
        raise ValueError(f"analysis rate {rate:g} Hz must be above 0 and at most {MAX_RATE_HZ:g}")
    started = time.perf_counter()
    source = VideoSource(path)
    source.open()
    try:
        classifier = load_classifier(model, device=settings.analysis.device)
        face_detector = detector_from_settings(settings.analysis)
        pipeline = Pipeline(classifier, face_detector, settings)
        people: set[int] = set()
        steps = 0
        last_t = 0.0
        csv_seconds = 0.0
        with SessionWriter(csv_path, source.description, classifier.meta, settings,
                           classes=pipeline.classes, runtime=classifier.runtime) as writer, \
                _Prefetcher(source, rate) as frames:
            pending: list[PreparedStep] = []

            def finish_pending() -> None:
                """Classify the faces of the pending steps in one batch, then write their results in order."""
                nonlocal steps, last_t, csv_seconds
                probabilities = pipeline.classify(np.concatenate([step.crops for step in pending]))
                first = 0
                for step in pending:
                    result = pipeline.finish(step, probabilities[first:first + len(step.crops)])
                    first += len(step.crops)
                    written = time.perf_counter()
                    writer.write(result)
                    csv_seconds += time.perf_counter() - written
                    people.update(face.person_id for face in result.faces)
                    steps += 1
                    last_t = result.t_seconds
                    if progress is not None:
                        progress(last_t, source.duration_s)
                pending.clear()

            for frame in frames:
                pending.append(pipeline.prepare(frame))
                if sum(len(step.crops) for step in pending) >= BATCH_FACES or len(pending) >= BATCH_STEPS:
                    finish_pending()
            if pending:
                finish_pending()
            rows = writer.rows_written
        duration = source.duration_s
    finally:
        source.close()
    stages = {"decode": source.decode_seconds, "convert": source.convert_seconds, **pipeline.stage_seconds,
              "csv": csv_seconds}
    # The last step falls within one step of the end, and container lengths are not exact.
    ended_early = duration > 0 and last_t < duration - max(1.0, 2.0 / rate)
    log.info("analysed %s: %d steps, %d rows, %d people", path, steps, rows, len(people))
    return AnalyzeSummary(steps=steps, rows=rows, people=len(people), video_seconds=last_t, csv_path=Path(csv_path),
                          duration_s=duration, ended_early=ended_early, stage_seconds=stages,
                          wall_seconds=time.perf_counter() - started)


class _Prefetcher:
    """Decodes a video's frames on the step grid k / rate in a thread of its own, a few ahead of the
    analysis: decoding runs beside detection and classification instead of between them.

    Iterating yields the frames in order; an error in the thread is raised in the reader. Leaving
    the ``with`` block (also by an exception) stops the thread before the source is closed.
    """

    def __init__(self, source: VideoSource, rate: float) -> None:
        self._source = source
        self._rate = rate
        self._queue: queue.Queue[Frame | BaseException | None] = queue.Queue(maxsize=PREFETCH_FRAMES)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="decode", daemon=True)

    def __enter__(self) -> _Prefetcher:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        while self._thread.is_alive():
            try:  # make room, so a thread blocked on a full queue sees the stop
                self._queue.get(timeout=0.05)
            except queue.Empty:
                pass
        self._thread.join()

    def _put(self, item: Frame | BaseException | None) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                pass
        return False

    def _run(self) -> None:
        next_t = 0.0
        try:
            while not self._stop.is_set():
                frame = self._source.read_from(next_t)
                if frame is None or not self._put(frame):
                    break
                # The next step's slot on the fixed grid k / rate, after this frame's time.
                next_t = (math.floor(frame.t_seconds * self._rate + 1e-6) + 1) / self._rate
        except Exception as exc:  # raised again in the reader's thread
            self._put(exc)
            return
        self._put(None)

    def __iter__(self) -> Iterator[Frame]:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
