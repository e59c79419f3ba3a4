"""Immutable results that cross from the analysis worker to the UI, the CSV and the CLI."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np

Box = tuple[int, int, int, int]  # x, y, w, h in source pixels


@dataclass(frozen=True)
class Frame:
    """One captured image.

    ``image`` BGR uint8 (H, W, 3); ``t_seconds`` from the source's start (a video's own clock);
    ``index`` counts frames read from the source; ``wall_time`` when it was captured (with offset).
    """

    image: np.ndarray
    t_seconds: float
    index: int
    wall_time: datetime


@dataclass(frozen=True)
class FaceObservation:
    """One tracked person in one analysis step; probabilities are smoothed, in classifier order."""

    person_id: int
    box: Box
    probabilities: tuple[float, ...]
    top_expression: str
    top_probability: float
    indicator: str  # "positive", "neutral" or "negative"


@dataclass(frozen=True)
class FrameResult:
    """Everything one analysis step found.

    ``faces`` the confirmed people seen in this frame; ``absent_ids`` confirmed people not seen for
    longer than the absence threshold whose tracks are still alive; ``latency_s`` from capture to
    result; ``dropped_frames`` frames the analysis skipped since the previous result (newest wins).
    """

    frame_index: int
    t_seconds: float
    wall_time: datetime
    frame_size: tuple[int, int]  # width, height
    faces: tuple[FaceObservation, ...]
    absent_ids: tuple[int, ...] = ()
    latency_s: float = 0.0
    dropped_frames: int = 0
