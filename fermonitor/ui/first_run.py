"""The responsible-use notice shown once, on first start, until the user acknowledges it."""

from __future__ import annotations

import logging

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QVBoxLayout, QWidget

log = logging.getLogger(__name__)

NOTICE_ACKNOWLEDGED_KEY = "notice/acknowledged_version"
NOTICE_VERSION = 2

NOTICE_TITLE = "Before you start"
NOTICE_HTML = """
<h3>What fermonitor does</h3>
<p>fermonitor reads the <b>facial expressions</b> of the faces it can see (neutral, happiness,
surprise, sadness, anger, disgust, fear, contempt). It does not read emotions or minds: an
expression is not what anyone feels or thinks. The model makes mistakes, and more for some faces
than for others. Use the timelines as a rough cue about a whole class, never to judge one
person.</p>
<h3>Privacy</h3>
<p>Everything stays on this machine: nothing is sent anywhere and nothing is downloaded. No picture
of anyone is stored: frames are analysed in memory and dropped. The session CSV holds numbers, and
the class chart saved beside it draws them. People get anonymous ids (#1, #2, ...) unless you name
them.</p>
<h3>Consent and the law</h3>
<p>The people you film should know about it and agree to it. The EU AI Act prohibits emotion
recognition systems in education institutions (and workplaces) in the EU, except for medical or
safety reasons: do not use fermonitor on students or staff of an education institution in the
EU.</p>
"""


class FirstRunNotice(QDialog):
    """A modal notice with one button to acknowledge it."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(NOTICE_TITLE)
        self.setModal(True)
        text = QLabel(NOTICE_HTML)
        text.setWordWrap(True)
        text.setMinimumWidth(480)
        buttons = QDialogButtonBox()
        buttons.addButton("I understand", QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.accepted.connect(self.accept)
        layout = QVBoxLayout(self)
        layout.addWidget(text)
        layout.addWidget(buttons)


def notice_needed(settings: QSettings) -> bool:
    """Whether this version of the notice has not been acknowledged yet (a damaged value counts
    as not acknowledged: the notice is shown again)."""
    try:
        return int(settings.value(NOTICE_ACKNOWLEDGED_KEY, 0)) < NOTICE_VERSION
    except (TypeError, ValueError):
        return True


def show_notice_if_needed(settings: QSettings, parent: QWidget | None = None) -> bool:
    """Show the notice when needed; returns True when it was acknowledged now or before."""
    if not notice_needed(settings):
        return True
    log.info("showing the first-run notice")
    if FirstRunNotice(parent).exec() != QDialog.DialogCode.Accepted:
        return False
    settings.setValue(NOTICE_ACKNOWLEDGED_KEY, NOTICE_VERSION)
    settings.sync()
    return True
