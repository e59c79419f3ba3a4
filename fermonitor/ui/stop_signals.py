"""Ctrl-C (SIGINT) and SIGTERM end the app the way its close button does, a modal dialog open or not."""

from __future__ import annotations

import logging
import signal
from types import FrameType, TracebackType

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QDialog, QWidget

from fermonitor.termination import Terminated

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# Python runs a signal handler only when it gets control; in Qt's event loop a timer gives it that.
SIGNAL_WAKE_INTERVAL_MS = 200
MAX_MODAL_DEPTH = 10  # modal dialogs closed, top first, before the window; more are never open


class StopSignals:
    """While entered, SIGINT and SIGTERM close the open modal dialogs (the first-run notice, a
    message box) and then :attr:`window`, from Qt's event loop: the session stops and its CSV, JSON
    and class chart are written as after a click on the close button. :meth:`raise_if_received` then
    raises what the signal means: ``KeyboardInterrupt`` for Ctrl-C, as Python would have (but
    without cutting the session short), :class:`~fermonitor.termination.Terminated` for SIGTERM.

    A signal that was ignored when the process started (a script's background job) stays ignored,
    as Python leaves it. The handlers must be entered in the main thread, with a QApplication.
    """

    def __init__(self) -> None:
        self.window: QWidget | None = None  # closed on a signal, once it exists
        self.received: int | None = None  # the first signal that came
        self._previous: dict[int, object] = {}
        self._wake = QTimer()
        self._wake.timeout.connect(lambda: None)

    def __enter__(self) -> StopSignals:
        for signum in STOP_SIGNALS:
            if signal.getsignal(signum) is not signal.SIG_IGN:
                self._previous[signum] = signal.signal(signum, self._on_signal)
        self._wake.start(SIGNAL_WAKE_INTERVAL_MS)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._wake.stop()
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)  # type: ignore[arg-type]
        self._previous.clear()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.received is None:
            self.received = signum
            log.info("%s: closing the window; the session files close with it", signal.Signals(signum).name)
        QTimer.singleShot(0, self.close_all)  # from the event loop, not inside whatever Python code was interrupted

    def close_all(self) -> None:
        """Close the modal dialogs, top first, then the window."""
        for _ in range(MAX_MODAL_DEPTH):
            modal = QApplication.activeModalWidget()
            if modal is None:
                break
            if isinstance(modal, QDialog):
                modal.reject()
            else:
                modal.close()
        if self.window is not None:
            self.window.close()

    def raise_if_received(self) -> None:
        """Raise what a signal that came means: Terminated for SIGTERM, KeyboardInterrupt for SIGINT."""
        if self.received == signal.SIGTERM:
            raise Terminated("terminated by SIGTERM")
        if self.received is not None:
            raise KeyboardInterrupt("interrupted")
