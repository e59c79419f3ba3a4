"""What the class views show, kept step by step from analysis results: a people x time grid and a seat map.

Both keep only the people seen lately, so their work per step follows the people in view, not
everyone a session has ever seen.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from fermonitor.core.pipeline import INDICATORS
from fermonitor.core.results import FrameResult

NO_DATA = -1  # a grid cell with no step of that person (not yet seen, or gone)
ABSENT_CODE = INDICATORS.index("absent")
# Height of the indicator in a sparkline: positive up, negative down.
INDICATOR_LEVEL = {"positive": 1.0, "neutral": 0.5, "negative": 0.0}


class PresenceGrid:
    """People x time: per person and time bin, the indicator and the top expression of its last step.

    A ring of ``columns`` bins of ``bin_s`` seconds; each result writes one cell per person it
    names (faces seen, people absent), and a bin that begins clears its column. People not seen
    for the whole span leave the grid.

    Parameters
    ----------
    classes
        The expression classes, in the order results use.
    bin_s
        Seconds per column.
    columns
        Columns kept (the grid spans ``bin_s * columns`` seconds).
    """

    def __init__(self, classes: tuple[str, ...], bin_s: float = 2.0, columns: int = 300) -> None:
        if bin_s <= 0 or columns < 1:
            raise ValueError(f"bin_s {bin_s} must be above 0 and columns {columns} at least 1")
        self.classes = tuple(classes)
        self.bin_s = bin_s
        self.columns = columns
        self.newest: int | None = None  # the newest bin's number (t // bin_s)
        self.first: int | None = None  # the first bin with a step
        self.version = 0  # grows with every result: a view redraws only when it changed
        self._indicator: dict[int, np.ndarray] = {}
        self._expression: dict[int, np.ndarray] = {}
        self._last_bin: dict[int, int] = {}

    def add(self, result: FrameResult) -> None:
        """Record one analysis step."""
        column = int(result.t_seconds // self.bin_s)
        if self.newest is None or column > self.newest:
            self._advance(column)
        elif column < self.newest - self.columns + 1:
            return  # older than the span (a source whose clock went back)
        self.first = column if self.first is None else min(self.first, column)
        slot = column % self.columns
        for face in result.faces:
            self._row(face.person_id, column)
            self._indicator[face.person_id][slot] = INDICATORS.index(face.indicator)
            self._expression[face.person_id][slot] = self.classes.index(face.top_expression)
        for person_id in result.absent_ids:
            self._row(person_id, column)
            self._indicator[person_id][slot] = ABSENT_CODE
            self._expression[person_id][slot] = NO_DATA
        self.version += 1

    def _row(self, person_id: int, column: int) -> None:
        if person_id not in self._indicator:
            self._indicator[person_id] = np.full(self.columns, NO_DATA, np.int8)
            self._expression[person_id] = np.full(self.columns, NO_DATA, np.int8)
        self._last_bin[person_id] = max(column, self._last_bin.get(person_id, column))

    def _advance(self, column: int) -> None:
        """Make ``column`` the newest bin: clear the bins it passes, drop people gone for the span."""
        previous = self.newest
        self.newest = column
        if previous is not None:
            passed = [c % self.columns for c in range(previous + 1, min(column, previous + self.columns) + 1)]
            for rows in (self._indicator, self._expression):
                for row in rows.values():
                    row[passed] = NO_DATA
        oldest = column - self.columns + 1
        for person_id in [p for p, last in self._last_bin.items() if last < oldest]:
            del self._indicator[person_id], self._expression[person_id], self._last_bin[person_id]

    def people(self) -> list[int]:
        """The people in the grid, ascending id."""
        return sorted(self._indicator)

    def codes(self, mode: str = "indicator") -> np.ndarray:
        """int8 (people, columns), oldest bin first: indices into INDICATORS (``mode="indicator"``)
        or into the classes (``"expression"``), NO_DATA where a person has no step."""
        rows = self._indicator if mode == "indicator" else self._expression
        people = self.people()
        if not people or self.newest is None:
            return np.zeros((0, self.columns), np.int8)
        grid = np.stack([rows[p] for p in people])
        return np.roll(grid, -((self.newest + 1) % self.columns), axis=1)

    def span_s(self) -> tuple[float, float]:
        """The (start, end) seconds the columns cover."""
        end = ((self.newest or 0) + 1) * self.bin_s
        return end - self.columns * self.bin_s, end

    def shown_span_s(self) -> tuple[float, float]:
        """The part of the span since the first step: a short session fills the width."""
        start, end = self.span_s()
        first = (self.first or 0) * self.bin_s
        return max(start, first), end


@dataclass
class Seat:
    """One person's tile: where their face is in the picture and what it shows now."""

    person_id: int
    centre: tuple[float, float]
    size: float
    indicator: str
    top_expression: str
    top_probability: float
    last_seen_t: float
    levels: deque[float] = field(default_factory=lambda: deque(maxlen=SPARKLINE_STEPS))


SPARKLINE_STEPS = 60  # steps in a tile's sparkline (30 s at 2 steps per second)
SEAT_KEEP_S = 30.0  # a person unseen this long loses their tile


class SeatBoard:
    """The people on screen arranged as their faces are arranged in the picture."""

    def __init__(self, keep_s: float = SEAT_KEEP_S) -> None:
        self.keep_s = keep_s
        self.seats: dict[int, Seat] = {}
        self.version = 0
        self._layout: dict[int, tuple[int, int]] = {}
        self._layout_people: frozenset[int] = frozenset()

    def add(self, result: FrameResult) -> None:
        seen = set()
        for face in result.faces:
            x, y, w, h = face.box
            seat = self.seats.get(face.person_id)
            if seat is None:
                seat = self.seats[face.person_id] = Seat(face.person_id, (0.0, 0.0), 0.0, "", "", 0.0, 0.0)
            seat.centre, seat.size = (x + w / 2, y + h / 2), float(max(w, h))
            seat.indicator, seat.top_expression = face.indicator, face.top_expression
            seat.top_probability, seat.last_seen_t = face.top_probability, result.t_seconds
            seat.levels.append(INDICATOR_LEVEL.get(face.indicator, np.nan))
            seen.add(face.person_id)
        for person_id, seat in list(self.seats.items()):
            if person_id in seen:
                continue
            if result.t_seconds - seat.last_seen_t > self.keep_s:
                del self.seats[person_id]
            else:
                seat.indicator = "absent"
                seat.levels.append(np.nan)
        self.version += 1

    def layout(self) -> dict[int, tuple[int, int]]:
        """person id -> (row, column) of a grid, kept until the people change."""
        people = frozenset(self.seats)
        if people != self._layout_people:
            self._layout = seat_layout({p: (s.centre[0], s.centre[1], s.size) for p, s in self.seats.items()})
            self._layout_people = people
        return self._layout


def _clusters(values: dict[int, float], gap: float) -> dict[int, int]:
    """Group values that lie within ``gap`` of the previous one: key -> cluster number, ascending."""
    out, cluster, previous = {}, -1, None
    for key, value in sorted(values.items(), key=lambda kv: kv[1]):
        if previous is None or value - previous > gap:
            cluster += 1
        out[key], previous = cluster, value
    return out


def seat_layout(faces: dict[int, tuple[float, float, float]]) -> dict[int, tuple[int, int]]:
    """Grid cells for faces given as id -> (centre x, centre y, size), in the picture's arrangement.

    Centres closer than half the median face size fall in the same row (by y) or column (by x), so
    a call gallery maps to its own rows and columns, and a classroom to rough rows of seats. Two
    faces that land in one cell are moved right to the next free one.
    """
    if not faces:
        return {}
    gap = 0.5 * float(np.median([size for _, _, size in faces.values()]))
    rows = _clusters({p: cy for p, (_, cy, _) in faces.items()}, gap)
    columns = _clusters({p: cx for p, (cx, _, _) in faces.items()}, gap)
    taken: set[tuple[int, int]] = set()
    cells = {}
    for person_id in sorted(faces, key=lambda p: (rows[p], faces[p][0])):
        cell = (rows[person_id], columns[person_id])
        while cell in taken:
            cell = (cell[0], cell[1] + 1)
        taken.add(cell)
        cells[person_id] = cell
    return cells
