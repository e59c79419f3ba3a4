"""Class-level alert rules: a condition that holds for a while gives a message for the banner."""

from __future__ import annotations

from fermonitor.core.results import FrameResult
from fermonitor.core.settings import AlertSettings


class HeldCondition:
    """Tracks since when a condition has held, on the session's clock (seconds)."""

    def __init__(self, hold_s: float) -> None:
        self.hold_s = hold_s
        self.since: float | None = None

    def update(self, holds: bool, t_seconds: float) -> bool:
        """Record the condition at ``t_seconds``; True once it has held for ``hold_s``."""
        if not holds:
            self.since = None
            return False
        if self.since is None:
            self.since = t_seconds
        return t_seconds - self.since >= self.hold_s


class AlertMonitor:
    """Evaluates the alert thresholds of :class:`AlertSettings` on each analysis result."""

    def __init__(self, settings: AlertSettings) -> None:
        self.settings = settings
        self._negative = HeldCondition(settings.negative_for_s)
        self._absent = HeldCondition(settings.absent_for_s)

    def update(self, result: FrameResult) -> list[str]:
        """The alert messages active after ``result`` (empty when all is quiet)."""
        visible = len(result.faces)
        negative = sum(1 for face in result.faces if face.indicator == "negative")
        share = negative / visible if visible else 0.0
        messages = []
        if self._negative.update(visible > 0 and share > self.settings.negative_share, result.t_seconds):
            messages.append(f"{share:.0%} of visible faces have shown a negative expression for "
                            f"{self.settings.negative_for_s:.0f} s or more")
        absent = len(result.absent_ids)
        if self._absent.update(absent > self.settings.absent_count, result.t_seconds):
            messages.append(f"{absent} people have been absent for {self.settings.absent_for_s:.0f} s or more")
        return messages
