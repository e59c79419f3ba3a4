"""People from detections: stable ids across analysis steps, and per-person probability smoothing.

Semantics (times on the source's clock, seconds):

- A new detection starts a *tentative* track. It becomes a person (a *confirmed* track with the
  next id, counting from 1) once it has been matched in ``min_hits`` steps with at most one missed
  step in between; a tentative track missing two steps in a row is dropped. So a one-off false
  positive never gets an id and never writes a row.
- A confirmed track not matched in a step stays alive. It is *absent* once it has not been matched
  for ``absent_after_s``, and it ends once it has not been matched for ``absent_after_s + grace_s``.
  A face matched before the end keeps the id; later it gets a new one. Ids are never reused.
- Matching is greedy on a cost of ``(1 - IoU) + distance / box width`` over the pairs that pass a
  gate (IoU at least ``iou_threshold`` or centre distance at most ``max_centre_distance`` box
  widths, widths within a factor of two and areas within a factor of four); confirmed tracks choose before tentative ones. The
  distance is the mean distance of the five landmarks when the detector gives them (they follow
  the face, not the box's jitter), else that of the box centres. A track's box is predicted
  forward with its recent velocity, which keeps ids through crossings.
- A tentative track that lies mostly (``MAX_INSIDE_PERSON``) inside the box of a person seen this
  step or just before is dropped: a chin, a mouth or an eye taken for a second face never becomes
  a person. Of two boxes confirmed in the same step the larger goes first.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from fermonitor.core.detection import Detection, inside_fraction
from fermonitor.core.detection import box_iou as iou
from fermonitor.core.results import Box
from fermonitor.core.settings import TrackingSettings

MAX_PREDICTION_S = 0.5  # a track's velocity is extrapolated at most this far ahead
MAX_SIZE_RATIO = 2.0  # boxes whose widths differ more than this are never the same face
VELOCITY_WEIGHT = 0.5  # EMA weight of the newest velocity measurement
# A new box this share of whose area lies inside a person's face box is part of that face.
MAX_INSIDE_PERSON = 0.5


@dataclass
class _Track:
    detection: Detection
    last_seen_t: float
    hits: int = 1
    misses: int = 0  # consecutive steps without a match
    person_id: int | None = None  # set once confirmed
    vx: float = 0.0  # centre velocity, pixels per second
    vy: float = 0.0

    @property
    def box(self) -> Box:
        return self.detection.box

    def shift(self, t: float) -> tuple[float, float]:
        """How far the face has moved since it was last seen, by its velocity, in pixels."""
        dt = min(max(0.0, t - self.last_seen_t), MAX_PREDICTION_S)
        return self.vx * dt, self.vy * dt

    def predicted(self, t: float) -> Box:
        dx, dy = self.shift(t)
        x, y, w, h = self.box
        return (round(x + dx), round(y + dy), w, h)


def landmark_distance(a: Sequence[tuple[float, float]], b: Sequence[tuple[float, float]], width: float) -> float:
    """Mean distance between corresponding landmarks in units of ``width``."""
    return float(np.mean([math.hypot(ax - bx, ay - by) for (ax, ay), (bx, by) in zip(a, b, strict=True)])) / max(width, 1)


def as_detection(face: Detection | Sequence[int]) -> Detection:
    """A detection as is, or a bare (x, y, w, h) box as a detection without score or landmarks."""
    if isinstance(face, Detection):
        return face
    x, y, w, h = (int(v) for v in face)
    return Detection((x, y, w, h))


def centre_distance(a: Box, b: Box) -> float:
    """Distance between the boxes' centres in units of the wider box's width."""
    dx = (a[0] + a[2] / 2) - (b[0] + b[2] / 2)
    dy = (a[1] + a[3] / 2) - (b[1] + b[3] / 2)
    return math.hypot(dx, dy) / max(a[2], b[2], 1)


class Tracker:
    """Assigns stable person ids to face boxes across analysis steps.

    Parameters
    ----------
    settings
        Gating thresholds, confirmation steps and grace period.
    absent_after_s
        When an unmatched person counts as absent (``IndicatorSettings.absent_after_s``);
        tracks live ``absent_after_s + settings.grace_s`` after their last match.
    """

    def __init__(self, settings: TrackingSettings | None = None, absent_after_s: float = 5.0) -> None:
        self.settings = settings if settings is not None else TrackingSettings()
        self.absent_after_s = absent_after_s
        self._tracks: list[_Track] = []
        self._next_id = 1

    @property
    def keep_s(self) -> float:
        """How long a confirmed track survives without a match."""
        return self.absent_after_s + self.settings.grace_s

    def reset(self) -> None:
        """Forget every track; ids keep counting up, so none is reused within the session."""
        self._tracks = []

    def _pairs(self, faces: Sequence[Detection], t: float) -> list[tuple[int, float, int, int]]:
        """Admissible (tier, cost, track index, detection index) pairs, best first."""
        s = self.settings
        pairs = []
        for ti, track in enumerate(self._tracks):
            predicted = track.predicted(t)
            dx, dy = track.shift(t)
            for bi, face in enumerate(faces):
                box = face.box
                ratio = max(box[2], predicted[2]) / max(1, min(box[2], predicted[2]))
                areas = sorted((box[2] * box[3], predicted[2] * predicted[3]))
                if ratio > MAX_SIZE_RATIO or areas[1] > MAX_SIZE_RATIO**2 * max(1, areas[0]):
                    continue
                overlap = iou(predicted, box)
                distance = centre_distance(predicted, box)
                if overlap >= s.iou_threshold or distance <= s.max_centre_distance:
                    if face.landmarks is not None and track.detection.landmarks is not None:
                        moved = [(x + dx, y + dy) for x, y in track.detection.landmarks]
                        distance = landmark_distance(moved, face.landmarks, max(box[2], predicted[2]))
                    tier = 0 if track.person_id is not None else 1
                    pairs.append((tier, (1.0 - overlap) + distance, ti, bi))
        pairs.sort()
        return pairs

    def update(self, faces: Iterable[Detection | Sequence[int]], t_seconds: float) -> list[tuple[int, Box]]:
        """:meth:`track`, giving each person's box only."""
        return [(person_id, face.box) for person_id, face in self.track(faces, t_seconds)]

    def recent_boxes(self) -> list[Box]:
        """The boxes of every track, tentative or confirmed, matched in the latest step."""
        return [t.box for t in self._tracks if t.misses == 0]

    def track(self, faces: Iterable[Detection | Sequence[int]], t_seconds: float) -> list[tuple[int, Detection]]:
        """Match this step's detections to tracks.

        Parameters
        ----------
        faces
            Detected faces (detections, or bare (x, y, w, h) boxes) in source pixels.
        t_seconds
            The step's time on the source's clock.

        Returns
        -------
        list of (person_id, detection)
            The confirmed people seen in this step, in ascending id order.
        """
        detections = [as_detection(f) for f in faces]
        matched_tracks: set[int] = set()
        matched_boxes: set[int] = set()
        for _, _, ti, bi in self._pairs(detections, t_seconds):
            if ti in matched_tracks or bi in matched_boxes:
                continue
            matched_tracks.add(ti)
            matched_boxes.add(bi)
            self._match(self._tracks[ti], detections[bi], t_seconds)
        survivors = []
        for ti, track in enumerate(self._tracks):
            if ti not in matched_tracks:
                track.misses += 1
                if track.person_id is None:
                    if track.misses >= 2:
                        continue  # a tentative track that missed two steps in a row was noise
                elif t_seconds - track.last_seen_t > self.keep_s:
                    continue
            survivors.append(track)
        survivors += [_Track(detection=face, last_seen_t=t_seconds)
                      for bi, face in enumerate(detections) if bi not in matched_boxes]
        self._tracks = self._confirm(survivors, t_seconds)
        seen = [(t.person_id, t.detection) for t in survivors
                if t.person_id is not None and t.misses == 0]
        return sorted(seen, key=lambda pair: pair[0])  # type: ignore[arg-type, return-value]

    def _confirm(self, tracks: list[_Track], t_seconds: float) -> list[_Track]:
        """Give an id to each tentative track with enough hits; drop those lying inside a person's face.

        Larger boxes go first, so of a face and its chin seen together the face becomes the person.
        """
        people = [t.box for t in tracks if t.person_id is not None and t_seconds - t.last_seen_t <= MAX_PREDICTION_S]
        parts: set[int] = set()
        for track in sorted(tracks, key=lambda t: -t.box[2] * t.box[3]):
            if track.person_id is not None:
                continue
            if any(inside_fraction(track.box, person) >= MAX_INSIDE_PERSON for person in people):
                parts.add(id(track))
            elif track.hits >= self.settings.min_hits:
                track.person_id = self._next_id
                self._next_id += 1
                people.append(track.box)
        return [t for t in tracks if id(t) not in parts]

    @staticmethod
    def _match(track: _Track, face: Detection, t: float) -> None:
        box = face.box
        dt = t - track.last_seen_t
        if 0 < dt <= MAX_PREDICTION_S * 4 and track.misses == 0:
            vx = ((box[0] + box[2] / 2) - (track.box[0] + track.box[2] / 2)) / dt
            vy = ((box[1] + box[3] / 2) - (track.box[1] + track.box[3] / 2)) / dt
            track.vx += VELOCITY_WEIGHT * (vx - track.vx)
            track.vy += VELOCITY_WEIGHT * (vy - track.vy)
        else:
            track.vx = track.vy = 0.0  # after a gap the old motion says nothing
        track.detection = face
        track.last_seen_t = t
        track.hits += 1
        track.misses = 0

    def absent_ids(self, t_seconds: float, absent_after_s: float | None = None) -> list[int]:
        """Confirmed people whose track is alive but unmatched for at least ``absent_after_s``."""
        limit = self.absent_after_s if absent_after_s is None else absent_after_s
        return sorted(t.person_id for t in self._tracks
                      if t.person_id is not None and t_seconds - t.last_seen_t >= limit)

    def alive_ids(self) -> list[int]:
        """Every confirmed person whose track has not ended."""
        return sorted(t.person_id for t in self._tracks if t.person_id is not None)


class ProbabilitySmoother:
    """Per-person exponential moving average of class probabilities with a time constant.

    The weight of a new observation is ``1 - exp(-dt / tau_s)``, so smoothing does not depend on
    the analysis rate; the first observation of a person is taken as is.
    """

    def __init__(self, tau_s: float) -> None:
        if tau_s < 0:
            raise ValueError(f"smoothing time constant {tau_s} s must not be negative")
        self.tau_s = tau_s
        self._state: dict[int, tuple[float, np.ndarray]] = {}

    def update(self, person_id: int, probabilities: np.ndarray, t_seconds: float) -> np.ndarray:
        """Fold one observation in and return the person's smoothed probabilities (a copy)."""
        probabilities = np.asarray(probabilities, dtype=np.float64)
        previous = self._state.get(person_id)
        if previous is None or self.tau_s == 0:
            smoothed = probabilities.copy()
        else:
            last_t, last = previous
            dt = max(0.0, t_seconds - last_t)
            alpha = 1.0 - math.exp(-dt / self.tau_s)
            smoothed = last + alpha * (probabilities - last)
        self._state[person_id] = (t_seconds, smoothed)
        return smoothed.copy()

    def forget(self, person_ids: Iterable[int]) -> None:
        """Drop the state of people whose track has ended."""
        for pid in person_ids:
            self._state.pop(pid, None)

    def keep_only(self, person_ids: Iterable[int]) -> None:
        """Drop the state of everyone not in ``person_ids``."""
        keep = set(person_ids)
        self.forget([pid for pid in self._state if pid not in keep])

    def reset(self) -> None:
        self._state.clear()
