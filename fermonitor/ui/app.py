"""Start the desktop app: QApplication, Qt messages and uncaught errors into the log, notice, window."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from pathlib import Path
from types import TracebackType

import platformdirs
from PySide6.QtCore import QMessageLogContext, QSettings, QTimer, QtMsgType, qInstallMessageHandler
from PySide6.QtWidgets import QApplication, QMessageBox

from fermonitor import __version__
from fermonitor.core.settings import SETTINGS_FILE_NAME, default_settings_path, load_settings
from fermonitor.ui.first_run import show_notice_if_needed
from fermonitor.ui.main_window import SOURCE_KEY, MainWindow
from fermonitor.ui.source_picker import default_source_spec
from fermonitor.ui.stop_signals import StopSignals

log = logging.getLogger(__name__)
qt_log = logging.getLogger("qt")

CONFIG_DIR_ENV = "FERMONITOR_CONFIG_DIR"  # overrides where settings and window state live (tests)
SESSIONS_DIR_ENV = "FERMONITOR_SESSIONS_DIR"  # overrides where session CSVs go by default
QSETTINGS_FILE_NAME = "fermonitor.ini"
STARTED_LINE = "fermonitor started"  # the packaging smoke test waits for this log line

_QT_LEVELS = {
    QtMsgType.QtDebugMsg: logging.DEBUG,
    QtMsgType.QtInfoMsg: logging.INFO,
    QtMsgType.QtWarningMsg: logging.WARNING,
    QtMsgType.QtCriticalMsg: logging.ERROR,
    QtMsgType.QtFatalMsg: logging.CRITICAL,
}


def qt_message_handler(kind: QtMsgType, context: QMessageLogContext, message: str) -> None:
    """Route Qt's own messages into the ``qt`` logger."""
    qt_log.log(_QT_LEVELS.get(kind, logging.WARNING), "%s (%s)", message, context.category or "qt")


class ExceptionDialogHook:
    """An excepthook that logs every uncaught exception and shows a dialog for the first only."""

    def __init__(self) -> None:
        self.shown = False
        self.count = 0

    def __call__(self, kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        self.count += 1
        log.critical("uncaught exception:\n%s", "".join(traceback.format_exception(kind, value, tb)))
        if self.shown or QApplication.instance() is None:
            return
        self.shown = True
        QMessageBox.critical(None, "fermonitor: unexpected error",
                             f"{kind.__name__}: {value}\n\nDetails are in the log file. "
                             "Further errors are logged without a dialog.")


def config_dir() -> Path:
    """Where settings and window state live: ``$FERMONITOR_CONFIG_DIR`` or the user config folder."""
    override = os.environ.get(CONFIG_DIR_ENV)
    return Path(override) if override else default_settings_path().parent


def settings_path() -> Path:
    return config_dir() / SETTINGS_FILE_NAME


def open_qsettings() -> QSettings:
    """Window state and flags as an INI file beside the settings file."""
    return QSettings(str(config_dir() / QSETTINGS_FILE_NAME), QSettings.Format.IniFormat)


def sessions_dir() -> Path:
    override = os.environ.get(SESSIONS_DIR_ENV)
    return Path(override) if override else Path(platformdirs.user_documents_dir()) / "fermonitor"


def create_window(args: argparse.Namespace) -> MainWindow:
    """Build the main window from the command line; settings problems are shown in it."""
    settings, warnings = load_settings(settings_path())
    qsettings = open_qsettings()
    source = args.source or qsettings.value(SOURCE_KEY, "") or default_source_spec()
    model = getattr(args, "model", None)
    window = MainWindow(settings, settings_path(), qsettings, str(source), sessions_dir(),
                        model_path=Path(model) if model else None,
                        show_summary=args.exit_after is None)
    if warnings:
        window.show_message("\n".join(warnings))
    return window


def run(args: argparse.Namespace) -> int:
    """Run the app until its window closes; returns the exit status.

    Ctrl-C (SIGINT) and SIGTERM close the first-run notice or the window the way a click on its
    close button does, so the session's CSV, JSON and class chart are written; ``KeyboardInterrupt``
    or :class:`~fermonitor.termination.Terminated` is then raised, as ``fermonitor analyze`` raises them.
    """
    previous_handler = qInstallMessageHandler(qt_message_handler)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("fermonitor")
    app.setApplicationVersion(__version__)
    hook = ExceptionDialogHook()
    previous_hook = sys.excepthook
    sys.excepthook = hook
    # Installed before the notice and the session, so that no signal can end a session without closing its files.
    stop = StopSignals()
    try:
        with stop:
            scripted = args.exit_after is not None
            if not scripted and not show_notice_if_needed(open_qsettings()):
                stop.raise_if_received()
                log.info("the first-run notice was not acknowledged; quitting")
                return 0
            stop.raise_if_received()  # a signal as the notice was acknowledged
            window = create_window(args)
            stop.window = window
            window.closed.connect(app.quit)  # also when it was hidden behind the compact view
            try:
                window.show()
                log.info("%s (version %s, source %s)", STARTED_LINE, __version__, window.source_spec)
                if args.source or args.csv:
                    window.start_session(Path(args.csv) if args.csv else None)
                if scripted:
                    QTimer.singleShot(int(args.exit_after * 1000), window.close)
                status = app.exec()
            finally:
                window.closed.disconnect(app.quit)  # a later quit would end the next event loop, whoever owns it
        if window.controller.threads_running():
            # A thread stuck past the close limit (a camera that never answers): Qt would abort when
            # its thread object is destroyed. The CSV's rows are written as they come; leave without it.
            log.error("exiting with a worker thread still running")
            logging.shutdown()
            os._exit(1)
        stop.raise_if_received()
        if hook.count or (scripted and window.failure):
            return 1  # a script learns that its session failed; the reason is in the log and on stderr
        return int(status)
    finally:
        sys.excepthook = previous_hook
        qInstallMessageHandler(previous_handler)
