"""One analysis step: detect faces, track people, classify every face in one batch, smooth, label."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from fermonitor.core.checkpoint import FERPLUS_CLASSES
from fermonitor.core.classifier import Classifier
from fermonitor.core.detection import Detection, FaceDetector
from fermonitor.core.preprocess import FACE_SIZE_PX, crop_face, to_grey
from fermonitor.core.results import Box, FaceObservation, Frame, FrameResult
from fermonitor.core.settings import IndicatorSettings, Settings
from fermonitor.core.tracking import ProbabilitySmoother, Tracker

log = logging.getLogger(__name__)

INDICATORS: tuple[str, ...] = ("positive", "neutral", "negative", "absent")


def check_indicator_mapping(classes: Sequence[str], settings: IndicatorSettings) -> None:
    """Raise ValueError when the mapping names an expression the model does not have."""
    for group, names in settings.groups().items():
        for name in names:
            if name not in classes:
                raise ValueError(f"setting indicator.{group} names expression {name!r}, which the model "
                                 f"does not have (its classes: {', '.join(classes)})")


def indicator_for(probabilities: Sequence[float], classes: Sequence[str], settings: IndicatorSettings) -> str:
    """The group (neutral, positive or negative) with the largest summed probability.

    Ties go to the earlier group in neutral, positive, negative order; expressions in no group
    count for none.
    """
    index = {name: i for i, name in enumerate(classes)}
    best, best_share = "neutral", -1.0
    for group, names in settings.groups().items():
        share = float(sum(probabilities[index[n]] for n in names if n in index))
        if share > best_share + 1e-12:
            best, best_share = group, share
    return best


STAGES = ("detection", "tracking", "crops", "classification")


@dataclass(frozen=True)
class PreparedStep:
    """One frame detected, tracked and cropped, waiting for its faces' probabilities."""

    frame: Frame
    people: list[tuple[int, Box]]  # (person id, box), in the order of ``crops``
    crops: np.ndarray  # uint8 (N, S, S)
    dropped_frames: int
    frame_size: tuple[int, int]  # width, height
    absent_ids: tuple[int, ...]  # as the tracker stood at this step
    alive_ids: tuple[int, ...]


class Pipeline:
    """Turns frames into :class:`FrameResult` objects, synchronously, one classifier batch per step.

    Parameters
    ----------
    classifier
        Either backend of :mod:`fermonitor.core.classifier` (``.classes``, ``.input_size``,
        ``.predict(uint8 (N, S, S))``); without ``input_size`` faces are 48x48.
    detector
        A face detector from :func:`fermonitor.core.detection.create_detector`.
    settings
        Crop margin (None: the classifier's ``meta.crop_margin``) and alignment, how often the
        whole frame is searched, smoothing, tracking and the indicator mapping.

    Raises
    ------
    ValueError
        When the indicator mapping names an expression the classifier does not have.
    """

    def __init__(self, classifier: Classifier, detector: FaceDetector, settings: Settings | None = None) -> None:
        self.settings = settings if settings is not None else Settings()
        self.classifier = classifier
        self.detector = detector
        model_classes = tuple(classifier.classes)
        # Results hold probabilities in FER+ order whatever order the model has, so the CSV, the
        # timelines and the alerts can read them by position.
        self._order: list[int] | None = None
        self.classes = model_classes
        if model_classes != FERPLUS_CLASSES and sorted(model_classes) == sorted(FERPLUS_CLASSES):
            self._order = [model_classes.index(name) for name in FERPLUS_CLASSES]
            self.classes = FERPLUS_CLASSES
        self.input_size = int(getattr(classifier, "input_size", FACE_SIZE_PX))
        # The crop margin the model was trained with, unless the settings override it.
        meta = getattr(classifier, "meta", None)
        model_margin = float(meta.crop_margin) if meta is not None else 0.0
        override = self.settings.analysis.crop_margin
        self.crop_margin = model_margin if override is None else override
        if override is not None and override != model_margin:
            log.info("crop margin %g from the settings, not the model's %g", override, model_margin)
        check_indicator_mapping(self.classes, self.settings.indicator)
        self.tracker = Tracker(self.settings.tracking, absent_after_s=self.settings.indicator.absent_after_s)
        self.smoother = ProbabilitySmoother(self.settings.analysis.smoothing_tau_s)
        self._steps_since_full_search: int | None = None  # None: the next step searches the whole frame
        self.full_searches = 0  # steps that searched the whole frame (the rest searched near tracks)
        self.stage_seconds = dict.fromkeys(STAGES, 0.0)  # time spent in each stage so far

    def reset(self) -> None:
        """Start over: forget tracks and smoothing state (ids keep counting up)."""
        self.tracker.reset()
        self.smoother.reset()
        self._steps_since_full_search = None

    def detect(self, image: np.ndarray) -> list[Detection]:
        """This step's faces: the whole frame every ``full_detection_every`` steps, else near the tracks.

        Between whole-frame searches a detector that can (``detect_near``) looks only around the
        faces tracked in the previous step; when it misses one of them (the person moved far or
        left), the whole frame is searched at once. New people appear at the next whole-frame search.
        """
        every = self.settings.analysis.full_detection_every
        near = getattr(self.detector, "detect_near", None)
        recent = self.tracker.recent_boxes()
        since = self._steps_since_full_search
        if near is not None and every > 1 and recent and since is not None and since + 1 < every:
            found = near(image, recent)
            if len(found) >= len(recent):
                self._steps_since_full_search = since + 1
                return found
        self._steps_since_full_search = 0
        self.full_searches += 1
        return self.detector.detect(image)

    def crop(self, image: np.ndarray, face: Detection) -> np.ndarray:
        """The model's input for one face: its square with the crop margin, eyes levelled if set."""
        roll = face.eye_angle_deg() if self.settings.analysis.align_faces else None
        return crop_face(image, face.box, self.crop_margin, roll or 0.0, self.input_size)

    def process(self, frame: Frame, dropped_frames: int = 0) -> FrameResult:
        """Analyse one frame: :meth:`prepare`, one classifier batch, :meth:`finish`.

        Parameters
        ----------
        frame
            The captured image with its time on the source's clock.
        dropped_frames
            Frames skipped since the previous step, passed through to the result.
        """
        step = self.prepare(frame, dropped_frames)
        return self.finish(step, self.classify(step.crops))

    def prepare(self, frame: Frame, dropped_frames: int = 0) -> PreparedStep:
        """Detect, track and crop one frame; the classification may come later, batched with other
        steps' faces (offline analysis), as long as :meth:`finish` sees the steps in order."""
        image = frame.image
        started = time.perf_counter()
        detections = self.detect(image)
        detected = time.perf_counter()
        people = self.tracker.track(detections, frame.t_seconds)
        tracked = time.perf_counter()
        size = self.input_size
        grey = to_grey(image) if people else image  # once for all faces: a turned crop samples the frame
        crops = (np.stack([self.crop(grey, face) for _, face in people]) if people
                 else np.zeros((0, size, size), np.uint8))
        self.stage_seconds["detection"] += detected - started
        self.stage_seconds["tracking"] += tracked - detected
        self.stage_seconds["crops"] += time.perf_counter() - tracked
        height, width = image.shape[:2]
        return PreparedStep(frame, [(pid, face.box) for pid, face in people], crops, dropped_frames, (width, height),
                            tuple(self.tracker.absent_ids(frame.t_seconds)), tuple(self.tracker.alive_ids()))

    def classify(self, crops: np.ndarray) -> np.ndarray:
        """Probabilities float32 (N, C) in this pipeline's class order for crops uint8 (N, S, S)."""
        if len(crops) == 0:
            return np.zeros((0, len(self.classes)), np.float32)
        started = time.perf_counter()
        raw = np.asarray(self.classifier.predict(crops), dtype=np.float32)
        self.stage_seconds["classification"] += time.perf_counter() - started
        if raw.shape != (len(crops), len(self.classes)):
            raise ValueError(f"classifier returned shape {raw.shape} for {len(crops)} faces and "
                             f"{len(self.classes)} classes")
        return raw[:, self._order] if self._order is not None else raw

    def finish(self, step: PreparedStep, probabilities: np.ndarray) -> FrameResult:
        """The result of a prepared step from its faces' probabilities (:meth:`classify`): smoothed
        per person, with the top expression and the indicator."""
        frame = step.frame
        faces: list[FaceObservation] = []
        for (person_id, box), raw in zip(step.people, probabilities, strict=True):
            smoothed = self.smoother.update(person_id, raw, frame.t_seconds)
            top = int(np.argmax(smoothed))
            faces.append(FaceObservation(
                person_id=person_id,
                box=box,
                probabilities=tuple(float(p) for p in smoothed),
                top_expression=self.classes[top],
                top_probability=float(smoothed[top]),
                indicator=indicator_for(smoothed, self.classes, self.settings.indicator),
            ))
        self.smoother.keep_only(step.alive_ids)
        latency = (datetime.now().astimezone() - frame.wall_time).total_seconds()
        return FrameResult(
            frame_index=frame.index,
            t_seconds=frame.t_seconds,
            wall_time=frame.wall_time,
            frame_size=step.frame_size,
            faces=tuple(faces),
            absent_ids=step.absent_ids,
            latency_s=max(0.0, latency),
            dropped_frames=step.dropped_frames,
        )
