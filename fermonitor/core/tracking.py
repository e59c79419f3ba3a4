"""People from detections: stable ids across analysis steps, and per-person probability smoothing.

Semantics (times on the source's clock, seconds):

- A new detection starts a *tentative* track. It becomes a person (a *confirmed* track with the
  next id, counting from 1) once it has been matched in ``min_hits`` steps with at most one missed
  step in between; a tentative track missing two steps in a row is dropped. So a one-off false
  positive never gets an id and never writes a row.
- A confirmed track not matched in a step stays alive. It is *absent* once it has not been matched
  for ``absent_after_s``, and it ends once it has not been matched for ``absent_after_s + grace_s``.
  A face matched before the end keeps the id; later it gets a new one. Ids are never reused.
- Matching is greedy on a cost of ``(1 - IoU) + centre distance / box width`` over the pairs that
  pass a gate (IoU at least ``iou_threshold`` or centre distance at most ``max_centre_distance``
  box widths, and sizes within a factor of two); confirmed tracks choose before tentative ones.
  A track's box is predicted forward with its recent velocity, which keeps ids through crossings.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from fermonitor.core.results import Box
from fermonitor.core.settings import TrackingSettings

MAX_PREDICTION_S = 0.5  # a track's velocity is extrapolated at most this far ahead
MAX_SIZE_RATIO = 2.0  # boxes whose widths differ more than this are never the same face
VELOCITY_WEIGHT = 0.5  # EMA weight of the newest velocity measurement


@dataclass
class _Track:
    box: Box
    last_seen_t: float
    hits: int = 1
    misses: int = 0  # consecutive steps without a match
    person_id: int | None = None  # set once confirmed
    vx: float = 0.0  # centre velocity, pixels per second
    vy: float = 0.0

    def predicted(self, t: float) -> Box:
        dt = min(max(0.0, t - self.last_seen_t), MAX_PREDICTION_S)
        x, y, w, h = self.box
        return (round(x + self.vx * dt), round(y + self.vy * dt), w, h)


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


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

    def _pairs(self, boxes: Sequence[Box], t: float) -> list[tuple[int, float, int, int]]:
        """Admissible (tier, cost, track index, box index) pairs, best first."""
        s = self.settings
        pairs = []
        for ti, track in enumerate(self._tracks):
            predicted = track.predicted(t)
            for bi, box in enumerate(boxes):
                ratio = max(box[2], predicted[2]) / max(1, min(box[2], predicted[2]))
                if ratio > MAX_SIZE_RATIO:
                    continue
                overlap = iou(predicted, box)
                distance = centre_distance(predicted, box)
                if overlap >= s.iou_threshold or distance <= s.max_centre_distance:
                    tier = 0 if track.person_id is not None else 1
                    pairs.append((tier, (1.0 - overlap) + distance, ti, bi))
        pairs.sort()
        return pairs

    def update(self, boxes: Iterable[Sequence[int]], t_seconds: float) -> list[tuple[int, Box]]:
        """Match this step's detections to tracks.

        Parameters
        ----------
        boxes
            Detected faces, (x, y, w, h) in source pixels.
        t_seconds
            The step's time on the source's clock.

        Returns
        -------
        list of (person_id, box)
            The confirmed people seen in this step, in ascending id order.
        """
        boxes = [tuple(int(v) for v in b) for b in boxes]
        matched_tracks: set[int] = set()
        matched_boxes: set[int] = set()
        for _, _, ti, bi in self._pairs(boxes, t_seconds):
            if ti in matched_tracks or bi in matched_boxes:
                continue
            matched_tracks.add(ti)
            matched_boxes.add(bi)
            self._match(self._tracks[ti], boxes[bi], t_seconds)  # type: ignore[arg-type]
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
        for bi, box in enumerate(boxes):
            if bi not in matched_boxes:
                survivors.append(_Track(box=box, last_seen_t=t_seconds))  # type: ignore[arg-type]
        for track in survivors:
            if track.person_id is None and track.hits >= self.settings.min_hits:
                track.person_id = self._next_id
                self._next_id += 1
        self._tracks = survivors
        seen = [(t.person_id, t.box) for t in survivors
                if t.person_id is not None and t.misses == 0]
        return sorted(seen)  # type: ignore[arg-type]

    @staticmethod
    def _match(track: _Track, box: Box, t: float) -> None:
        dt = t - track.last_seen_t
        if 0 < dt <= MAX_PREDICTION_S * 4 and track.misses == 0:
            vx = ((box[0] + box[2] / 2) - (track.box[0] + track.box[2] / 2)) / dt
            vy = ((box[1] + box[3] / 2) - (track.box[1] + track.box[3] / 2)) / dt
            track.vx += VELOCITY_WEIGHT * (vx - track.vx)
            track.vy += VELOCITY_WEIGHT * (vy - track.vy)
        else:
            track.vx = track.vy = 0.0  # after a gap the old motion says nothing
        track.box = box
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
