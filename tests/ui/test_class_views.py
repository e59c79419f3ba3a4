"""The class view at a glance: heat-map and seat map colours for a scripted session, a click opens
a person's timeline, labels in the video pane stay on their own face."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
from PySide6.QtCore import QRectF
from PySide6.QtGui import QImage, QPainter

from fermonitor.core.checkpoint import FERPLUS_CLASSES
from fermonitor.core.results import FaceObservation, FrameResult
from fermonitor.core.timeline import TimelineStore
from fermonitor.ui.class_views import EXPRESSION_RGB, INDICATOR_RGB, NO_DATA_RGB
from fermonitor.ui.compact_view import CompactView, counts_text
from fermonitor.ui.timeline_widget import TimelineWidget
from fermonitor.ui.video_view import face_label

GALLERY = {pid: ((pid % 5) * 250 + 20, (pid // 5) * 140 + 20, 90, 90) for pid in range(25)}


def indicator_of(pid: int, t: float) -> str:
    """A scripted class: the first row happy, the last row cross after 10 s, the rest neutral."""
    if pid < 5:
        return "positive"
    if pid >= 20 and t >= 10:
        return "negative"
    return "neutral"


def scripted_results(seconds: float = 20.0) -> list[FrameResult]:
    out = []
    for k in range(int(seconds * 2)):
        t = k / 2
        faces = []
        for pid, box in GALLERY.items():
            if pid == 12 and t >= 5:
                continue  # left the call after 5 s
            indicator = indicator_of(pid, t)
            top = {"positive": "happiness", "negative": "anger"}.get(indicator, "neutral")
            faces.append(FaceObservation(pid, box, tuple([1 / 8] * 8), top, 0.8, indicator))
        out.append(FrameResult(k, t, datetime.now(timezone.utc), (1280, 720), tuple(faces), (12,) if t >= 5 else ()))
    return out


def fed_widget(qtbot: object) -> tuple[TimelineWidget, TimelineStore]:
    widget = TimelineWidget(FERPLUS_CLASSES)
    qtbot.addWidget(widget)  # type: ignore[attr-defined]
    widget.resize(900, 1000)
    widget.show()
    store = TimelineStore(FERPLUS_CLASSES)
    for result in scripted_results():
        store.append(result)
        widget.add_result(result)
    return widget, store


def test_the_heatmap_shows_each_persons_indicator_then_their_top_expression(qtbot: object) -> None:
    widget, store = fed_widget(qtbot)
    widget.refresh(store)
    heatmap = widget.heatmap
    assert heatmap.people == list(range(25))
    assert heatmap.colour_at(0) == INDICATOR_RGB["positive"]
    assert heatmap.colour_at(7) == INDICATOR_RGB["neutral"]
    assert heatmap.colour_at(22) == INDICATOR_RGB["negative"]
    assert heatmap.colour_at(12) == INDICATOR_RGB["absent"]
    start, _ = widget.grid.span_s()
    assert heatmap.colour_at(22, int((4 - start) // widget.grid.bin_s)) == INDICATOR_RGB["neutral"]  # at 4 s
    assert heatmap.colour_at(22, 0) == NO_DATA_RGB  # long before the session began
    assert "negative" in widget.heatmap_legend.text() and "anger" not in widget.heatmap_legend.text()
    widget.heatmap_mode_combo.setCurrentIndex(1)
    assert "anger" in widget.heatmap_legend.text()  # the colour key follows the mode
    assert heatmap.colour_at(0) == EXPRESSION_RGB[FERPLUS_CLASSES.index("happiness")]
    assert heatmap.colour_at(22) == EXPRESSION_RGB[FERPLUS_CLASSES.index("anger")]
    image = heatmap.image.image
    assert image.shape[:2] == (25, widget.grid.columns)
    widget.rename_person(3, "Ada")
    heatmap.refresh()
    labels = dict(heatmap.getPlotItem().getAxis("left")._tickLevels[0])
    assert labels[3.5] == "Ada" and labels[0.5] == "#0"


def test_all_25_people_fit_the_heatmap_without_scrolling(qtbot: object) -> None:
    widget, store = fed_widget(qtbot)
    widget.refresh(store)
    box = widget.heatmap.getPlotItem().vb
    assert box.viewRange()[1] == [0, 25]
    assert box.height() / 25 >= 12  # rows of readable height in a 1000-px-high view


def test_the_seat_map_lays_tiles_out_as_the_gallery_and_colours_them(qtbot: object) -> None:
    widget, store = fed_widget(qtbot)
    widget.tabs.setCurrentWidget(widget.seat_map)
    widget.refresh(store)
    tiles = widget.seat_map.tiles
    assert set(tiles) == set(range(25))
    layout = widget.seat_map.grid_layout
    for pid in (0, 6, 24):
        row, column, _, _ = layout.getItemPosition(layout.indexOf(tiles[pid]))
        assert (row, column) == (pid // 5, pid % 5)
    assert tiles[0].colour().getRgb()[:3] == INDICATOR_RGB["positive"]
    assert tiles[22].colour().getRgb()[:3] == INDICATOR_RGB["negative"]
    assert tiles[12].colour().getRgb()[:3] == INDICATOR_RGB["absent"]
    assert tiles[0].expression == "happiness 80%" and len(tiles[0].levels) == 40
    picture = tiles[22].grab().toImage()
    assert QImage(picture).pixelColor(3, picture.height() // 2).getRgb()[:3] == INDICATOR_RGB["negative"]


def test_clicking_a_tile_or_a_heatmap_row_opens_that_persons_timeline(qtbot: object) -> None:
    widget, store = fed_widget(qtbot)
    widget.tabs.setCurrentWidget(widget.seat_map)
    widget.refresh(store)
    widget.seat_map.tiles[7].clicked.emit(7)
    assert widget.tabs.currentWidget() is widget.scroll
    assert widget.rows[7].enlarged
    widget.tabs.setCurrentIndex(0)
    widget.refresh(store)
    assert widget.heatmap.person_at_row(22.4) == 22 and widget.heatmap.person_at_row(25.0) is None
    widget.heatmap.person_clicked.emit(22)
    assert widget.tabs.currentWidget() is widget.scroll and widget.rows[22].enlarged


def test_the_compact_view_shows_counts_alerts_and_the_class_chart(qtbot: object) -> None:
    compact = CompactView()
    qtbot.addWidget(compact)  # type: ignore[attr-defined]
    compact.show()
    store = TimelineStore(FERPLUS_CLASSES)
    results = scripted_results()
    for result in results:
        store.append(result)
    compact.add_result(results[-1], ["2 people have been absent for 30 s or more"])
    compact.refresh(store)
    assert compact.counts_label.text() == "24 faces: 5 positive, 14 neutral, 5 negative; 1 absent"
    assert counts_text(results[0]) == "25 faces: 5 positive, 20 neutral, 0 negative; 0 absent"
    assert not compact.alert_banner.isHidden()
    x, y = compact.curves[0].getData()
    assert len(x) == len(results) and y[-1] == 5 / 25  # positive share of the 24 seen and 1 absent
    requested = []
    compact.full_requested.connect(lambda: requested.append(True))
    compact.close()  # closing the panel goes back to the full window
    assert requested == [True]


def faces_axis_shown(widget: TimelineWidget) -> tuple[tuple[float, float], list[str], str]:
    """The face-count axis as drawn: its range, its tick labels and its title."""
    axis = widget.faces_plot.getAxis("left")
    low, high = widget.faces_plot.getViewBox().viewRange()[1]
    ticks = [text for spacing, values in axis.tickValues(low, high, axis.height())
             for text in axis.tickStrings(values, axis.autoSIPrefixScale, spacing)]
    return (low, high), ticks, axis.labelString()


def test_the_face_count_axis_starts_at_0_in_whole_numbers_without_a_scale_prefix(qtbot: object) -> None:
    widget = TimelineWidget(FERPLUS_CLASSES)
    qtbot.addWidget(widget)  # type: ignore[attr-defined]
    widget.resize(900, 700)
    widget.show()
    store = TimelineStore(FERPLUS_CLASSES)
    for k in range(6):  # steps with no face yet: a flat 0, which pyqtgraph drew as -200..200 "x0.001"
        store.append(FrameResult(k, k / 2, datetime.now(timezone.utc), (640, 480), ()))
    for shown in ([], store):
        if shown:
            widget.refresh(store, force=True)
        (low, high), ticks, title = faces_axis_shown(widget)
        assert low == 0 and high >= 1
        assert ticks and all(text.isdigit() for text in ticks) and "0" in ticks
        assert "x0.001" not in title and "(" not in title
    store = TimelineStore(FERPLUS_CLASSES)
    for result in scripted_results(5.0):  # 25 faces
        store.append(result)
    widget.refresh(store, force=True)
    (low, high), ticks, title = faces_axis_shown(widget)
    assert low == 0 and high >= 25 and all(text.isdigit() for text in ticks) and "(" not in title
    widget.reset()
    assert widget.faces_plot.getViewBox().viewRange()[1][0] == 0


def test_a_label_is_no_wider_than_its_face_and_never_covers_the_next_one() -> None:
    image = QImage(800, 400, QImage.Format.Format_RGB32)
    painter = QPainter(image)
    picture = QRectF(0, 0, 800, 400)
    small = QRectF(100, 100, 40, 40)
    text, rect = face_label(painter, small, [], picture, "#12", "happiness 80%")
    assert text == "#12" and rect.width() <= small.width() and rect.bottom() <= small.top()
    big = QRectF(300, 100, 200, 200)
    text, rect = face_label(painter, big, [], picture, "#3", "happiness 80%")
    assert text == "#3  happiness 80%" and rect.width() <= big.width()
    below = QRectF(300, 310, 200, 70)  # a face right under the big one: its label goes inside
    text, rect = face_label(painter, below, [big], picture, "#4", "anger 60%")
    assert not rect.intersects(big) and below.contains(rect)
    top = QRectF(600, 0, 100, 100)  # no room above the picture's edge
    _, rect = face_label(painter, top, [], picture, "#5", "fear 50%")
    assert rect.top() == 0
    painter.end()
    assert np.all([w > 0 for w in (small.width(), big.width())])
