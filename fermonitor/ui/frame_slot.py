"""A single "latest frame" slot between the capture and analysis threads: the newest frame wins."""

from __future__ import annotations

import threading

from fermonitor.core.results import Frame


class LatestFrameSlot:
    """Holds at most one frame; a frame overwritten before anyone took it counts as dropped.

    The capture thread calls :meth:`put`, the analysis thread :meth:`take`. :meth:`close` wakes a
    waiting reader for good (the source ended or failed); frames still in the slot can be taken.
    """

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._frame: Frame | None = None
        self._dropped = 0
        self._closed = False

    def put(self, frame: Frame) -> None:
        with self._condition:
            if self._frame is not None:
                self._dropped += 1
            self._frame = frame
            self._condition.notify_all()

    def take(self, timeout_s: float) -> tuple[Frame | None, int]:
        """The newest frame (or None after ``timeout_s`` or when closed and empty) and the number
        of frames dropped since the previous take."""
        with self._condition:
            if self._frame is None and not self._closed:
                self._condition.wait(timeout_s)
            frame, dropped = self._frame, self._dropped
            self._frame = None
            if frame is not None:
                self._dropped = 0
            return frame, dropped

    def forget_dropped(self) -> None:
        """Frames overwritten while the reader chose to wait (rate limiting) were never wanted."""
        with self._condition:
            self._dropped = 0

    def close(self) -> None:
        with self._condition:
            self._closed = True
            self._condition.notify_all()

    @property
    def closed(self) -> bool:
        with self._condition:
            return self._closed and self._frame is None
