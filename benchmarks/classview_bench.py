"""Repaint time per tick of the class view as the number of people ever seen grows.

Usage (from the repository root; runs offscreen, no display needed):

    python benchmarks/classview_bench.py [--ticks 60] [--write]

A session is replayed into the app's class view (TimelineWidget) at 2 steps per second: groups of
25 people take turns of 60 s each until ``seen`` people have been in the picture, then the last 25
stay. For each tab (heat-map, seats, timelines) the script then times ``ticks`` ticks of the UI:
record one step, refresh the view and paint the whole widget synchronously. The columns side by
side show whether the cost per tick follows the people present (25) or everyone seen (25-200).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from benchmarks.common import machine_description, write_section  # noqa: E402
from fermonitor.core.checkpoint import FERPLUS_CLASSES  # noqa: E402
from fermonitor.core.results import FaceObservation, FrameResult  # noqa: E402
from fermonitor.core.timeline import TimelineStore  # noqa: E402

PRESENT = 25
STEP_S = 0.5
TURN_S = 60.0
SEEN_COUNTS = (25, 100, 200)
TABS = ("Heat-map", "Seats", "Timelines")
INDICATOR_OF_TOP = {"happiness": "positive", "surprise": "positive", "neutral": "neutral"}


def step_result(index: int, group: int, rng: np.random.Generator) -> FrameResult:
    """One analysis step with the 25 people of ``group`` in a 5x5 gallery, random expressions."""
    faces = []
    for seat in range(PRESENT):
        probabilities = rng.dirichlet(np.ones(len(FERPLUS_CLASSES)))
        top = int(np.argmax(probabilities))
        name = FERPLUS_CLASSES[top]
        box = ((seat % 5) * 250 + 20, (seat // 5) * 140 + 20, 90, 90)
        faces.append(FaceObservation(group * PRESENT + seat, box, tuple(float(p) for p in probabilities), name,
                                     float(probabilities[top]), INDICATOR_OF_TOP.get(name, "negative")))
    return FrameResult(index, index * STEP_S, datetime.now(timezone.utc), (1280, 720), tuple(faces))


def measure(seen: int, tab: str, ticks: int) -> float:
    """Median milliseconds per UI tick on ``tab`` after ``seen`` people have been in the picture."""
    from fermonitor.ui.timeline_widget import TimelineWidget

    rng = np.random.default_rng(seen)
    widget = TimelineWidget(FERPLUS_CLASSES)
    widget.resize(1000, 1000)
    widget.tabs.setCurrentIndex(TABS.index(tab))
    widget.show()
    store = TimelineStore(FERPLUS_CLASSES)
    groups = seen // PRESENT
    steps_per_turn = int(TURN_S / STEP_S)
    index = 0
    for group in range(groups):
        for _ in range(steps_per_turn):
            result = step_result(index, group, rng)
            store.append(result)
            widget.add_result(result)
            index += 1
    widget.refresh(store, force=True)
    widget.repaint()
    times = []
    for _ in range(ticks):
        result = step_result(index, groups - 1, rng)
        index += 1
        start = time.perf_counter()
        store.append(result)
        widget.add_result(result)
        widget.refresh(store)
        widget.repaint()
        times.append(time.perf_counter() - start)
    widget.close()
    widget.deleteLater()
    return 1000 * statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=60, help="ticks timed per case (default 60)")
    parser.add_argument("--write", action="store_true", help="also write the results to benchmarks/RESULTS.md")
    args = parser.parse_args(argv)

    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    machine = machine_description()
    print(machine)
    rows = []
    for tab in TABS:
        figures = [measure(seen, tab, args.ticks) for seen in SEEN_COUNTS]
        app.processEvents()
        rows.append(f"| {tab} | " + " | ".join(f"{ms:.1f}" for ms in figures) + " |")
        print(rows[-1], flush=True)
    header = ("| tab shown | " + " | ".join(f"{n} seen" for n in SEEN_COUNTS) + " |\n"
              "|---|" + "---:|" * len(SEEN_COUNTS) + "\n")
    table = header + "\n".join(rows)
    print(table)
    if args.write:
        write_section("classview_bench", (
            f"Median ms per UI tick (record one step, refresh, paint the class view at 1000x1000), "
            f"{PRESENT} people present, after groups of {PRESENT} took {TURN_S:.0f}-s turns until the number "
            f"seen was reached; {args.ticks} ticks per case, offscreen Qt.\n\n"
            f"Machine: {machine}\n\n{table}\n"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
