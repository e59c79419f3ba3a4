"""The main window: composes the feature widgets and routes session events between them."""

from __future__ import annotations

import logging
import time
from datetime import datetime
from pathlib import Path

from PySide6.QtCore import QRect, QSettings, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QCloseEvent, QGuiApplication
from PySide6.QtWidgets import QApplication, QLabel, QMainWindow, QSplitter, QVBoxLayout, QWidget

from fermonitor.core.alerts import AlertMonitor
from fermonitor.core.checkpoint import FERPLUS_CLASSES
from fermonitor.core.classifier import MODEL_HELP, resolve_backend, shipped_backends
from fermonitor.core.resources import default_model_path
from fermonitor.core.results import FrameResult
from fermonitor.core.session import new_session_path
from fermonitor.core.settings import Settings, save_settings
from fermonitor.core.sources import Rect, capture_area, intersect
from fermonitor.core.timeline import TimelineStore
from fermonitor.core.windows import place_beside
from fermonitor.ui.alerts import AlertBanner
from fermonitor.ui.capture_exclusion import exclude_from_capture
from fermonitor.ui.compact_view import CompactView
from fermonitor.ui.session_controller import SessionController, SessionPlan
from fermonitor.ui.session_controls import SessionControls
from fermonitor.ui.settings_dialog import SettingsDialog, changed_fields
from fermonitor.ui.source_picker import choose_source
from fermonitor.ui.status_panel import StatusPanel
from fermonitor.ui.summary_dialog import SummaryDialog
from fermonitor.ui.timeline_widget import TimelineWidget
from fermonitor.ui.video_view import VideoView

log = logging.getLogger(__name__)

REPAINT_INTERVAL_MS = 33  # video repaint period (about 30 per second)
CLOSE_POLL_MS = 100  # how often a window closed during a slow stop looks whether its threads have ended
CLOSE_WAIT_LIMIT_S = 60.0  # after this the window closes anyway and the app exits without them (app.run)
TIMELINE_REPAINT_TICKS = 15  # timelines repaint every this many video repaints (about 2 per second)
SOURCE_KEY = "session/source"
CLASS_PNG_SUFFIX = "_class_timeline.png"


def model_problem(model_path: Path | None) -> str | None:
    """Why no model can be loaded, or None when a model file is there."""
    if model_path is not None:
        return None if model_path.is_file() else f"model file {model_path} does not exist: {MODEL_HELP}"
    if shipped_backends():
        return None  # which one runs is chosen in the analysis thread: it may import torch to decide
    try:
        path = default_model_path(resolve_backend("auto", None))
    except ValueError as exc:
        return str(exc)
    return f"No expression model installed (looked for {path}): {MODEL_HELP}"


def class_png_path(csv_path: Path) -> Path:
    return csv_path.with_name(csv_path.stem + CLASS_PNG_SUFFIX)


def screen_rect(rect: QRect, ratio: float) -> Rect:
    """A rectangle in Qt's device-independent pixels -> the screen's own pixels, which capture uses."""
    return (round(rect.x() * ratio), round(rect.y() * ratio), round(rect.width() * ratio),
            round(rect.height() * ratio))


def own_window_rects() -> tuple[Rect, ...]:
    """Where this app's shown windows are, in screen pixels; none on a platform without a real
    screen (offscreen tests), where nothing of ours can be captured."""
    if QGuiApplication.platformName() in ("offscreen", "minimal"):
        return ()
    return tuple(screen_rect(w.frameGeometry(), w.devicePixelRatioF())
                 for w in QApplication.topLevelWidgets() if w.isVisible() and w.isWindow())


class MainWindow(QMainWindow):
    """Video and alerts on the left, timelines on the right, session toolbar and status bar.

    Parameters
    ----------
    settings
        The analysis settings in force.
    settings_path
        Where the settings dialog saves them.
    qsettings
        Window state and the last source (values, not widget indices).
    source_spec
        The source to use; None takes the last one used, or the default.
    sessions_dir
        Where session CSVs go when no path is given.
    model_path
        A checkpoint; None uses the shipped model.
    """

    closed = Signal()  # the window has closed for good (also while the compact view stood in for it)

    def __init__(self, settings: Settings, settings_path: Path | None, qsettings: QSettings,
                 source_spec: str, sessions_dir: Path, model_path: Path | None = None,
                 show_summary: bool = True) -> None:
        super().__init__()
        self.setWindowTitle("fermonitor")
        self.settings = settings
        self.settings_path = settings_path
        self.qsettings = qsettings
        self.source_spec = source_spec
        self.sessions_dir = sessions_dir
        self.model_path = model_path
        self.show_summary = show_summary
        self.csv_path: Path | None = None
        self.last_png_path: Path | None = None
        self.summary_dialog: SummaryDialog | None = None
        self.failure: str | None = None  # why the last session could not start or what ended it
        self.store = TimelineStore.from_settings(FERPLUS_CLASSES, settings.timeline)
        self.alerts = AlertMonitor(settings.alerts)
        self.controller = SessionController(self)
        self.compact = CompactView()
        self.compact.full_requested.connect(self.show_full_window)
        # Where the system can leave our windows out of captures (Windows, macOS), nothing needs
        # blanking or moving; on X11 it cannot.
        self.capture_excluded = exclude_from_capture(self) and exclude_from_capture(self.compact)

        self.controls = SessionControls(self)
        self.addToolBar(self.controls)
        self.controls.set_source(source_spec)
        self.message_label = QLabel()
        self.message_label.setWordWrap(True)
        self.message_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.message_label.setStyleSheet("background: #fde2e1; color: #7a1410; padding: 6px; border-radius: 3px;")
        self.message_label.hide()
        self.alert_banner = AlertBanner()
        self.video_view = VideoView()
        self.timeline = TimelineWidget(FERPLUS_CLASSES)
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(self.message_label)
        left_layout.addWidget(self.alert_banner)
        left_layout.addWidget(self.video_view, 1)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(left)
        splitter.addWidget(self.timeline)
        splitter.setStretchFactor(0, 1)
        splitter.setStretchFactor(1, 1)
        self.setCentralWidget(splitter)
        self.status = StatusPanel(self.statusBar(), self)

        self.controls.start_requested.connect(self.on_start_requested)
        self.controls.pause_toggled.connect(self.on_pause_toggled)
        self.controls.stop_requested.connect(self.on_stop_requested)
        self.controls.source_requested.connect(self.on_source_requested)
        self.controls.settings_requested.connect(self.on_settings_requested)
        self.controls.compact_requested.connect(self.show_compact_view)
        self.controller.frame_processed.connect(self.on_frame_processed)
        self.controller.state_changed.connect(self.on_state_changed)
        self.controller.faulted.connect(self.on_session_faulted)
        self.controller.ended.connect(self.on_session_ended)
        self.timeline.person_renamed.connect(self.on_person_renamed)

        self._ticks = 0
        self.repaint_timer = QTimer(self)
        self.repaint_timer.setInterval(REPAINT_INTERVAL_MS)
        self.repaint_timer.timeout.connect(self.on_repaint_timer_timeout)
        self.repaint_timer.start()
        # Closed while a worker was still busy: the window closes once the threads have ended.
        self.close_wait_timer = QTimer(self)
        self.close_wait_timer.setInterval(CLOSE_POLL_MS)
        self.close_wait_timer.timeout.connect(self.on_close_wait_timer_timeout)
        self.close_wait_since: float | None = None  # when a close began waiting for the threads
        self.resize(1280, 760)
        problem = model_problem(model_path)
        if problem is not None:
            self.show_message(problem)
        self.video_view.set_message("Press Start to analyse " + source_spec)

    # -- session ---------------------------------------------------------------------------

    def start_session(self, csv_path: Path | None = None) -> bool:
        """Start analysing the current source into ``csv_path`` (a new file in the sessions folder
        when None); False when it could not start (the reason is shown in the window)."""
        if self.controller.running:
            return False
        if self.controller.threads_running():
            self.show_message("The last session is still stopping; press Start again in a moment.")
            return False
        self.failure = None
        if csv_path is None:
            try:
                self.sessions_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                self.failure = f"sessions folder {self.sessions_dir} cannot be created ({exc.strerror or exc})"
                self.show_message(f"{self.failure}; choose another with the FERMONITOR_SESSIONS_DIR "
                                  "environment variable or --csv.")
                return False
            csv_path = new_session_path(self.sessions_dir, datetime.now())
        self.csv_path = Path(csv_path)
        self.last_png_path = None
        self.store = TimelineStore.from_settings(FERPLUS_CLASSES, self.settings.timeline)
        self.alerts = AlertMonitor(self.settings.alerts)
        self.alert_banner.show_messages([])
        self.timeline.reset()
        self.status.reset()
        self.status.set_csv_path(self.csv_path)
        self.message_label.hide()
        self.video_view.clear()
        self.video_view.set_message("Opening " + self.source_spec)
        self.compact.reset()
        plan = SessionPlan(self.source_spec, self.csv_path, self.settings, self.model_path)
        if not self.controller.start(plan):
            return False
        note = self.keep_out_of_capture()
        self.status.set_note(note)
        if note:
            log.info("%s", note)
        return True

    # -- never analyse ourselves -----------------------------------------------------------

    def publish_own_windows(self) -> None:
        """Tell a screen, region or window source where our windows are, to blank them."""
        if hasattr(self.controller.source, "excluded") and not self.capture_excluded:
            self.controller.source.excluded = own_window_rects()  # type: ignore[union-attr]

    def keep_out_of_capture(self) -> str:
        """When the source captures screen pixels under our window, move the window beside that
        area, or switch to the compact view beside it, where a screen has room; what was done."""
        source = self.controller.source
        if self.capture_excluded:
            return ""
        area = capture_area(source) if source is not None else None
        if area is None or not any(intersect(area, rect) for rect in own_window_rects()):
            self.publish_own_windows()
            return ""
        ratio = self.devicePixelRatioF()
        screens = [screen_rect(s.availableGeometry(), ratio) for s in QGuiApplication.screens()]
        frame = self.frameGeometry()
        extra = (frame.width() - self.width(), frame.height() - self.height())  # the window manager's frame
        minimum = self.minimumSizeHint().expandedTo(self.minimumSize())
        for width, height in ((frame.width(), frame.height()),
                              (minimum.width() + extra[0], minimum.height() + extra[1])):
            spot = place_beside(area, (round(width * ratio), round(height * ratio)), screens)
            if spot is not None:
                self.resize(width - extra[0], height - extra[1])
                self.move(round(spot[0] / ratio), round(spot[1] / ratio))
                self.publish_own_windows()
                return "Moved this window beside the captured area, so that it is not analysed"
        compact = self.compact.frameGeometry()
        spot = place_beside(area, (round(compact.width() * ratio), round(compact.height() * ratio)), screens)
        if spot is not None:
            self.show_compact_view()
            self.compact.move(round(spot[0] / ratio), round(spot[1] / ratio))
            self.publish_own_windows()
            return "Switched to the compact view beside the captured area, so that the window is not analysed"
        self.publish_own_windows()
        return "This window covers part of the captured area: that part is blanked, not analysed"

    @Slot()
    def show_compact_view(self) -> None:
        self.compact.show()
        self.compact.raise_()
        self.hide()
        self.publish_own_windows()

    @Slot()
    def show_full_window(self) -> None:
        self.compact.hide()
        self.show()
        self.raise_()
        self.publish_own_windows()

    def stop_session(self) -> bool:
        """Stop the running session; True when every worker thread has ended."""
        return self.controller.stop()

    def show_message(self, text: str) -> None:
        """A clear message in the window (faults, missing model); the app keeps running."""
        self.message_label.setText(text)
        self.message_label.show()
        log.warning("shown to the user: %s", text)

    def message(self) -> str:
        return self.message_label.text() if not self.message_label.isHidden() else ""

    # -- slots -------------------------------------------------------------------------------

    @Slot()
    def on_start_requested(self) -> None:
        self.start_session()

    @Slot(bool)
    def on_pause_toggled(self, paused: bool) -> None:
        self.controller.set_paused(paused)

    @Slot()
    def on_stop_requested(self) -> None:
        self.stop_session()

    @Slot()
    def on_source_requested(self) -> None:
        spec = choose_source(self, self.source_spec)
        if spec:
            self.set_source(spec)

    def set_source(self, spec: str) -> None:
        self.source_spec = spec
        self.controls.set_source(spec)
        self.qsettings.setValue(SOURCE_KEY, spec)
        self.video_view.set_message("Press Start to analyse " + spec)

    @Slot()
    def on_settings_requested(self) -> None:
        dialog = SettingsDialog(self.settings, self.source_spec, self,
                                choose_source=lambda parent: choose_source(parent, self.source_spec))
        if dialog.exec() != SettingsDialog.DialogCode.Accepted:
            return
        self.apply_settings(dialog.result_settings(), dialog.source_spec())

    def apply_settings(self, settings: Settings, source_spec: str) -> None:
        """Use and save new settings; they apply from the next session on."""
        log.info("settings changed: %s", ", ".join(changed_fields(self.settings, settings)) or "none")
        self.settings = settings
        if source_spec and source_spec != self.source_spec:
            self.set_source(source_spec)
        try:
            save_settings(settings, self.settings_path)
        except OSError as exc:
            self.show_message(f"settings could not be saved to {self.settings_path} ({exc})")

    @Slot(object)
    def on_frame_processed(self, result: FrameResult) -> None:
        self.store.append(result)
        self.status.add_result(result)
        self.timeline.add_result(result)
        self.video_view.set_result(result, self.controller.names)
        alerts = self.alerts.update(result)
        self.alert_banner.show_messages(alerts)
        self.compact.add_result(result, alerts)

    @Slot(str)
    def on_state_changed(self, state: str) -> None:
        self.status.set_state(state)
        self.controls.set_state(state)
        self.compact.set_state(state)

    def csv_note(self) -> str:
        if self.csv_path is None or not self.controller.csv_opened or not self.csv_path.is_file():
            return ""
        if self.controller.csv_failed:
            return f" The session's CSV holds the rows written before that: {self.csv_path}"
        return f" The session's CSV is complete: {self.csv_path}"

    @Slot(str)
    def on_session_faulted(self, message: str) -> None:
        self.failure = message
        shown = self.message().splitlines() if self.controller.running else []
        self.show_message("\n".join([*shown, f"{message}."]))

    @Slot(str)
    def on_session_ended(self, reason: str) -> None:
        if reason == "the source ended":
            self.show_message(f"The source ended ({self.source_spec}).{self.csv_note()}")
        elif reason != "stopped":
            self.show_message(f"{self.message()}{self.csv_note()}")
        self.video_view.set_message(f"Session ended: {reason}")
        self.timeline.refresh(self.store, force=True)
        self.status.refresh()
        if self.csv_path is None or len(self.store) == 0:
            return
        png = class_png_path(self.csv_path)
        try:
            self.last_png_path = self.timeline.save_class_png(png)
        except OSError as exc:
            self.show_message("\n".join(filter(None, [self.message(), str(exc)])))  # after what the window said
        if self.show_summary:
            self.summary_dialog = SummaryDialog(self.store.summary(), self.controller.names, self.csv_path,
                                                self.last_png_path, reason, self)
            self.summary_dialog.show()

    @Slot(int, str)
    def on_person_renamed(self, person_id: int, name: str) -> None:
        self.controller.rename(person_id, name)

    @Slot()
    def on_repaint_timer_timeout(self) -> None:
        self._ticks += 1
        # The newest captured frame, taken here at the paint rate: frames never queue up for the UI.
        frame = self.controller.newest_frame()
        if frame is not None:
            self.video_view.set_frame(frame)
        self.video_view.refresh()
        if self.controller.running:
            self.publish_own_windows()
        if self._ticks % TIMELINE_REPAINT_TICKS == 0:
            self.timeline.refresh(self.store)
            self.compact.refresh(self.store)
            self.status.refresh()
            self.show_blanked_share()

    def show_blanked_share(self) -> None:
        share = getattr(self.controller.source, "blanked_share", 0.0) if self.controller.running else 0.0
        if share > 0:
            self.status.set_note(f"{share:.0%} of the captured area is this app's own window: blanked, not analysed")
        elif self.status.note_label.text().endswith("blanked, not analysed"):
            self.status.set_note("")

    @Slot()
    def on_close_wait_timer_timeout(self) -> None:
        if not self.controller.threads_running() or self.close_wait_over():
            self.close_wait_timer.stop()
            self.close()

    def close_wait_over(self) -> bool:
        return self.close_wait_since is not None and time.monotonic() - self.close_wait_since >= CLOSE_WAIT_LIMIT_S

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt override)
        self.repaint_timer.stop()
        if self.close_wait_since is not None:
            if self.controller.threads_running() and not self.close_wait_over():
                event.ignore()  # already waiting for the threads: another close changes nothing
                return
        elif self.controller.running or self.controller.threads_running():
            self.show_summary = False
            if not self.controller.stop():
                # A worker is still busy (loading the model cannot be cut short): the window says
                # so and closes, ending the app, once its threads have ended.
                log.warning("a worker thread is still busy; the window closes once it ends")
                self.controls.setEnabled(False)
                self.show_message("Closing once the analysis has stopped (a model that is loading finishes "
                                  "first)...")
                self.close_wait_since = time.monotonic()
                self.close_wait_timer.start()
                event.ignore()
                return
        self.close_wait_timer.stop()
        if self.controller.threads_running():
            log.error("a worker thread did not stop within %.0f s; closing without it", CLOSE_WAIT_LIMIT_S)
        self.close_wait_since = None
        if self.summary_dialog is not None:
            self.summary_dialog.close()
        self.compact.hide()
        self.compact.deleteLater()
        event.accept()
        self.closed.emit()
