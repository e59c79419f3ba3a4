"""A whole day of timelines in minutes: memory, refresh and paint time over a simulated long session.

Usage (from the repository root; runs offscreen, no display needed):

    python benchmarks/soak.py [--hours 8] [--rate 2] [--present 30] [--ids 2400] [--sample-s 60] [--write]

The app's TimelineStore (with the default settings' history and forget times) and TimelineWidget
are fed ``hours`` of analysis steps at ``rate`` steps per second as fast as the machine allows.
``present`` people are in the picture at any time; over the session ``ids`` people come and go
(each stays the same time, arrivals evenly spread), as in a corridor or a recording with many cuts.
Every ``sample-s`` simulated seconds the widget refreshes at three steps in a row, as the app does
at each tick, and the script records the third refresh's and paint's milliseconds (the Timelines tab
in view, the most work) and the process's RSS. It
prints one row per simulated hour and checks the targets: the newest step always drawn, refresh
<= 50 ms throughout, RSS growth after the first hour <= 100 MB.
"""

from __future__ import annotations

import argparse
import os
import resource
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
from fermonitor.core.settings import Settings  # noqa: E402
from fermonitor.core.timeline import TimelineStore  # noqa: E402

REFRESH_TARGET_MS = 50.0
# Refreshes before the one timed at each sample: the first draws the steps fed since the last
# sample at once; the app refreshes every tick, so the timed one has a tick's news, as in the app.
CATCH_UP_TICKS = 2
RSS_GROWTH_TARGET_MB = 100.0


def rss_mb() -> float:
    """The process's resident memory now (Linux /proc), else its peak."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Crowd:
    """Who is in the picture when: person k arrives at k * spacing seconds and stays ``stay_s``."""

    def __init__(self, hours: float, present: int, ids: int) -> None:
        self.stay_s = present * hours * 3600.0 / ids
        self.spacing_s = self.stay_s / present
        self.ids = ids
        self.present = present
        self._probabilities = np.random.default_rng(0).dirichlet(np.ones(len(FERPLUS_CLASSES)), size=64)

    def result(self, index: int, t: float) -> FrameResult:
        newest = min(int(t // self.spacing_s), self.ids - 1)
        faces = []
        for pid in range(max(0, newest - self.present + 1), newest + 1):
            if t >= pid * self.spacing_s + self.stay_s:
                continue
            p = self._probabilities[(pid + index // 20) % len(self._probabilities)]
            top = int(np.argmax(p))
            seat = pid % self.present
            box = ((seat % 6) * 200 + 20, (seat // 6) * 140 + 20, 90, 90)
            indicator = {"happiness": "positive", "neutral": "neutral"}.get(FERPLUS_CLASSES[top], "negative")
            faces.append(FaceObservation(pid + 1, box, tuple(float(v) for v in p), FERPLUS_CLASSES[top],
                                         float(p[top]), indicator))
        return FrameResult(index, t, datetime.now(timezone.utc), (1280, 720), tuple(faces))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=8.0)
    parser.add_argument("--rate", type=float, default=2.0, help="analysis steps per second")
    parser.add_argument("--present", type=int, default=30, help="people in the picture at any time")
    parser.add_argument("--ids", type=int, default=2400, help="people over the whole session")
    parser.add_argument("--sample-s", type=float, default=60.0, help="simulated seconds between refreshes timed")
    parser.add_argument("--write", action="store_true", help="also write the results to benchmarks/RESULTS.md")
    args = parser.parse_args(argv)

    from PySide6.QtWidgets import QApplication

    from fermonitor.ui.timeline_widget import TimelineWidget

    app = QApplication.instance() or QApplication([])
    machine = machine_description()
    print(machine, flush=True)
    settings = Settings().timeline
    store = TimelineStore.from_settings(FERPLUS_CLASSES, settings)
    widget = TimelineWidget(FERPLUS_CLASSES)
    widget.resize(1000, 1000)
    widget.tabs.setCurrentWidget(widget.scroll)
    widget.show()
    crowd = Crowd(args.hours, args.present, args.ids)
    steps = int(args.hours * 3600 * args.rate)
    sample_every = max(1, int(args.sample_s * args.rate))
    hours: dict[int, dict[str, list[float]]] = {}
    rss_after_first_hour = None
    newest_always_shown = True
    started = time.perf_counter()
    for index in range(steps):
        t = index / args.rate
        result = crowd.result(index, t)
        store.append(result)
        widget.add_result(result)
        phase = index % sample_every
        if phase > CATCH_UP_TICKS and index != steps - 1:
            continue
        start = time.perf_counter()
        widget.refresh(store)
        refreshed = time.perf_counter()
        widget.repaint()
        app.processEvents()  # deleteLater of rows whose people left
        painted = time.perf_counter()
        x_data, _ = widget.class_expression_curves[0].getData()
        newest_always_shown &= x_data is not None and len(x_data) > 0 and x_data[-1] == t
        if phase < CATCH_UP_TICKS:
            continue  # these ticks catch up with the steps fed without a refresh
        hour = int(t // 3600)
        figures = hours.setdefault(hour, {"refresh": [], "paint": [], "rss": [], "live": [], "rows": []})
        figures["refresh"].append(1000 * (refreshed - start))
        figures["paint"].append(1000 * (painted - refreshed))
        figures["rss"].append(rss_mb())
        figures["live"].append(len(store.person_ids()))
        figures["rows"].append(len(widget.rows))
        if hour >= 1 and rss_after_first_hour is None:
            rss_after_first_hour = hours[0]["rss"][-1]
    elapsed = time.perf_counter() - started

    lines = ["| hour | refresh ms median / max | paint ms median / max | RSS MB at end | people live | rows |",
             "|---:|---:|---:|---:|---:|---:|"]
    for hour, f in sorted(hours.items()):
        lines.append(f"| {hour} | {statistics.median(f['refresh']):.1f} / {max(f['refresh']):.1f} | "
                     f"{statistics.median(f['paint']):.1f} / {max(f['paint']):.1f} | {f['rss'][-1]:.0f} | "
                     f"{f['live'][-1]} | {f['rows'][-1]} |")
    worst_refresh = max(max(f["refresh"]) for f in hours.values())
    growth = hours[max(hours)]["rss"][-1] - (rss_after_first_hour or hours[0]["rss"][-1])
    summary = (f"{steps} steps ({args.hours:g} h at {args.rate:g} Hz), {args.present} present, {args.ids} ids "
               f"(each {crowd.stay_s / 60:.1f} min), simulated in {elapsed:.0f} s; store holds "
               f"{len(store)} class steps, {len(store.summary())} people in the summary.\n\n"
               f"- newest step always drawn: {'yes' if newest_always_shown else 'NO'}\n"
               f"- worst refresh: {worst_refresh:.1f} ms (target <= {REFRESH_TARGET_MS:.0f}): "
               f"{'met' if worst_refresh <= REFRESH_TARGET_MS else 'NOT met'}\n"
               f"- RSS growth after the first hour: {growth:.0f} MB (target <= {RSS_GROWTH_TARGET_MB:.0f}): "
               f"{'met' if growth <= RSS_GROWTH_TARGET_MB else 'NOT met'}")
    table = "\n".join(lines)
    print(table)
    print(summary)
    if args.write:
        write_section("soak", f"Machine: {machine}\n\n`python benchmarks/soak.py --hours {args.hours:g} "
                              f"--rate {args.rate:g} --present {args.present} --ids {args.ids} "
                              f"--sample-s {args.sample_s:g}`\n\n{table}\n\n{summary}\n")
    return 0 if newest_always_shown else 1


if __name__ == "__main__":
    raise SystemExit(main())
