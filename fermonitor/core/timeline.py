"""Bounded per-person and class timelines of a session, and its end-of-session summary.

Every series holds at most the last ``history_s`` seconds, in a ring of at most ``max_points``
steps, and a person not seen for ``forget_after_s`` leaves the live series; so memory stays flat
however long a session runs and however many people pass. The summary comes from running totals
and so covers the whole session and everyone in it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fermonitor.core.pipeline import INDICATORS
from fermonitor.core.results import FrameResult
from fermonitor.core.settings import TimelineSettings

# A safety cap on the steps of one series: an hour at ten analysis steps per second.
DEFAULT_MAX_POINTS = 3600 * 10
DEFAULT_HISTORY_S = 3600.0
DEFAULT_FORGET_AFTER_S = 600.0
ABSENT_CODE = INDICATORS.index("absent")


class _Ring:
    """A growing-then-wrapping float array of rows: doubles up to ``capacity``, then overwrites."""

    def __init__(self, width: int, capacity: int, dtype: type = np.float32) -> None:
        self.capacity = capacity
        self._data = np.zeros((min(capacity, 64), width), dtype=dtype)
        self._start = 0
        self._size = 0

    def __len__(self) -> int:
        return self._size

    @property
    def nbytes(self) -> int:
        return self._data.nbytes

    def append(self, row: np.ndarray | list[float] | tuple[float, ...]) -> None:
        if self._size < self.capacity and self._size == len(self._data):
            grown = np.zeros((min(self.capacity, 2 * len(self._data)), self._data.shape[1]), dtype=self._data.dtype)
            grown[: self._size] = self.values()
            self._data, self._start = grown, 0
        if self._size < self.capacity:
            self._data[(self._start + self._size) % len(self._data)] = row
            self._size += 1
        else:
            self._data[self._start] = row
            self._start = (self._start + 1) % len(self._data)

    def values(self, first: int = 0) -> np.ndarray:
        """The rows from the ``first``-th oldest on, oldest first (a copy of those rows only)."""
        first = min(max(first, 0), self._size)
        start = (self._start + first) % len(self._data)
        end = start + self._size - first
        if end <= len(self._data):
            return self._data[start:end].copy()
        return np.concatenate([self._data[start:], self._data[: end - len(self._data)]])

    def first_at_least(self, value: float) -> int:
        """Index (oldest = 0) of the first row whose first column is >= ``value``, by binary search;
        the rows must be in ascending order of that column (times are)."""
        lo, hi, n = 0, self._size, len(self._data)
        while lo < hi:
            mid = (lo + hi) // 2
            if self._data[(self._start + mid) % n, 0] < value:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def drop_before(self, value: float) -> None:
        """Forget the oldest rows whose first column (time) is below ``value``."""
        dropped = self.first_at_least(value)
        self._start = (self._start + dropped) % len(self._data)
        self._size -= dropped

    def last(self, column: int = 0) -> float:
        """``column`` of the newest row (there must be one)."""
        return float(self._data[(self._start + self._size - 1) % len(self._data), column])

    def rows_since(self, since: float | None) -> np.ndarray:
        """The rows whose first column (time) is >= ``since``; all rows for None."""
        return self.values(0 if since is None else self.first_at_least(since))


@dataclass(frozen=True)
class PersonSeries:
    """One person's steps, oldest first: times, smoothed probabilities (NaN while absent), indicators.

    ``indicator`` holds indices into :data:`fermonitor.core.pipeline.INDICATORS`.
    """

    t: np.ndarray  # float64 (N,)
    probabilities: np.ndarray  # float32 (N, C)
    indicator: np.ndarray  # int8 (N,)


@dataclass(frozen=True)
class ClassSeries:
    """The class aggregate per step, oldest first.

    ``expression_shares`` (N, C): share of visible faces whose top expression is each class (0 when
    none is visible); ``indicator_shares`` (N, 4) in INDICATORS order, of visible plus absent people;
    ``faces_visible`` (N,).
    """

    t: np.ndarray
    expression_shares: np.ndarray
    indicator_shares: np.ndarray
    faces_visible: np.ndarray


@dataclass(frozen=True)
class PersonSummary:
    """Whole-session shares of one person: steps seen or absent, mean probabilities, indicator shares."""

    person_id: int
    steps_seen: int
    steps_absent: int
    first_t: float
    last_t: float
    mean_probabilities: dict[str, float]
    top_expression_shares: dict[str, float]
    indicator_shares: dict[str, float]  # over seen plus absent steps, INDICATORS keys


@dataclass
class _Totals:
    first_t: float
    last_t: float
    steps_seen: int
    steps_absent: int
    probability_sum: np.ndarray
    top_counts: np.ndarray
    indicator_counts: np.ndarray


class TimelineStore:
    """Per-person and class series of a session, bounded in time, in steps and in people.

    Parameters
    ----------
    classes
        The classifier's class names, in its order.
    max_points
        At most this many steps kept per series; older steps are overwritten.
    history_s
        Seconds of each series kept, counted back from the newest step.
    forget_after_s
        A person not named by any step for this long leaves the series (the summary keeps them).
    """

    def __init__(self, classes: tuple[str, ...] | list[str], max_points: int = DEFAULT_MAX_POINTS,
                 history_s: float = DEFAULT_HISTORY_S, forget_after_s: float = DEFAULT_FORGET_AFTER_S) -> None:
        if max_points < 1:
            raise ValueError(f"max_points {max_points} must be at least 1")
        if not history_s > 0 or not forget_after_s > 0:
            raise ValueError(f"history_s {history_s} and forget_after_s {forget_after_s} must be above 0")
        self.classes = tuple(classes)
        self.max_points = max_points
        self.history_s = history_s
        self.forget_after_s = forget_after_s
        self.version = 0  # grows with every step: a view redraws when it changed
        self._people: dict[int, _Ring] = {}
        self._totals: dict[int, _Totals] = {}
        n = len(self.classes)
        # Class rows: t, expression shares (C), indicator shares (4), faces visible.
        self._class = _Ring(1 + n + len(INDICATORS) + 1, max_points, np.float64)
        self._indicator_code = {name: i for i, name in enumerate(INDICATORS)}

    @classmethod
    def from_settings(cls, classes: tuple[str, ...] | list[str], settings: TimelineSettings) -> TimelineStore:
        return cls(classes, history_s=settings.history_min * 60.0, forget_after_s=settings.forget_after_min * 60.0)

    def __len__(self) -> int:
        """Steps held in the class series."""
        return len(self._class)

    @property
    def nbytes(self) -> int:
        """Memory held by the series arrays."""
        return self._class.nbytes + sum(r.nbytes for r in self._people.values())

    def person_ids(self) -> list[int]:
        """The people in the live series (seen within ``forget_after_s``), ascending."""
        return sorted(self._people)

    def append(self, result: FrameResult) -> None:
        """Add one analysis step."""
        n = len(self.classes)
        t = result.t_seconds
        expression_counts = np.zeros(n)
        indicator_counts = np.zeros(len(INDICATORS))
        for face in result.faces:
            code = self._indicator_code[face.indicator]
            top = self.classes.index(face.top_expression)
            expression_counts[top] += 1
            indicator_counts[code] += 1
            self._person(face.person_id).append([t, *face.probabilities, code])
            totals = self._person_totals(face.person_id, t)
            totals.steps_seen += 1
            totals.probability_sum += np.asarray(face.probabilities, dtype=np.float64)
            totals.top_counts[top] += 1
            totals.indicator_counts[code] += 1
        for person_id in result.absent_ids:
            indicator_counts[ABSENT_CODE] += 1
            self._person(person_id).append([t, *([np.nan] * n), ABSENT_CODE])
            totals = self._person_totals(person_id, t)
            totals.steps_absent += 1
            totals.indicator_counts[ABSENT_CODE] += 1
        visible = len(result.faces)
        people = visible + len(result.absent_ids)
        self._class.append([
            t,
            *(expression_counts / visible if visible else expression_counts),
            *(indicator_counts / people if people else indicator_counts),
            visible,
        ])
        self._forget_old(t)
        self.version += 1

    def _forget_old(self, t: float) -> None:
        """Drop steps older than the history and the people gone for longer than ``forget_after_s``."""
        oldest = t - self.history_s
        self._class.drop_before(oldest)
        for person_id, ring in list(self._people.items()):
            if not len(ring) or ring.last() < t - self.forget_after_s:
                del self._people[person_id]
            else:
                ring.drop_before(oldest)

    def _person(self, person_id: int) -> _Ring:
        ring = self._people.get(person_id)
        if ring is None:
            # float64 rows keep the times exact; the ring is bounded, so its size is fixed.
            ring = self._people[person_id] = _Ring(1 + len(self.classes) + 1, self.max_points, np.float64)
        return ring

    def _person_totals(self, person_id: int, t: float) -> _Totals:
        totals = self._totals.get(person_id)
        n = len(self.classes)
        if totals is None:
            totals = self._totals[person_id] = _Totals(t, t, 0, 0, np.zeros(n), np.zeros(n, dtype=np.int64),
                                                       np.zeros(len(INDICATORS), dtype=np.int64))
        totals.last_t = t
        return totals

    @property
    def last_t(self) -> float | None:
        """Time of the newest step, None before the first."""
        return self._class.last() if len(self._class) else None

    def person_last_t(self, person_id: int) -> float | None:
        """Time of the newest step that names ``person_id`` (seen or absent), None for an unknown id."""
        totals = self._totals.get(person_id)
        return totals.last_t if totals is not None else None

    def person_series(self, person_id: int, since: float | None = None) -> PersonSeries:
        """One person's series, from time ``since`` on (the whole kept series for None); empty arrays
        for an unknown id. Only the rows asked for are copied, so a plot of the last minutes of a long
        session costs what those minutes hold."""
        n = len(self.classes)
        ring = self._people.get(person_id)
        rows = ring.rows_since(since) if ring is not None else np.zeros((0, n + 2))
        return PersonSeries(t=rows[:, 0].astype(np.float64), probabilities=rows[:, 1:1 + n].astype(np.float32),
                            indicator=rows[:, 1 + n].astype(np.int8))

    def class_series(self, since: float | None = None) -> ClassSeries:
        """The class aggregate series, from time ``since`` on (all kept steps for None)."""
        n, k = len(self.classes), len(INDICATORS)
        rows = self._class.rows_since(since)
        return ClassSeries(t=rows[:, 0], expression_shares=rows[:, 1:1 + n],
                           indicator_shares=rows[:, 1 + n:1 + n + k], faces_visible=rows[:, 1 + n + k].astype(np.int64))

    def summary(self) -> dict[int, PersonSummary]:
        """Whole-session shares per person, by id."""
        out = {}
        for pid in sorted(self._totals):
            tot = self._totals[pid]
            seen = max(tot.steps_seen, 1)
            counted = max(tot.steps_seen + tot.steps_absent, 1)
            out[pid] = PersonSummary(
                person_id=pid,
                steps_seen=tot.steps_seen,
                steps_absent=tot.steps_absent,
                first_t=tot.first_t,
                last_t=tot.last_t,
                mean_probabilities={c: float(v) / seen for c, v in zip(self.classes, tot.probability_sum, strict=True)},
                top_expression_shares={c: int(v) / seen for c, v in zip(self.classes, tot.top_counts, strict=True)},
                indicator_shares={name: int(v) / counted for name, v in zip(INDICATORS, tot.indicator_counts, strict=True)},
            )
        return out
