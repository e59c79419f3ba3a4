"""Ask the system to leave our windows out of screen captures, where it can.

- Windows 10 2004 and later: ``SetWindowDisplayAffinity(hwnd, WDA_EXCLUDEFROMCAPTURE)``; screen
  captures (ours through mss, and a video call's screen share) then show what lies behind the window.
- macOS: the window's ``sharingType`` set to ``NSWindowSharingNone``; captures leave it out.
- X11 has no such switch: there the capture blanks our windows' pixels instead
  (:func:`fermonitor.ui.main_window.own_window_rects`).

Neither call can be tested on this project's Linux machines; a failure is logged and the
blanking stays in force.
"""

from __future__ import annotations

import ctypes
import logging
import sys

from PySide6.QtWidgets import QWidget

log = logging.getLogger(__name__)

WDA_EXCLUDEFROMCAPTURE = 0x11
NS_WINDOW_SHARING_NONE = 0


def exclude_from_capture(widget: QWidget) -> bool:
    """Mark ``widget``'s window as left out of screen captures; True when the system accepted it."""
    try:
        if sys.platform == "win32":
            return _exclude_on_windows(int(widget.winId()))
        if sys.platform == "darwin":
            return _exclude_on_macos(int(widget.winId()))
    except Exception:  # an old system without the call: the blanking covers it
        log.warning("the window could not be excluded from screen capture", exc_info=True)
    return False


def _exclude_on_windows(hwnd: int) -> bool:
    user32 = ctypes.windll.user32  # type: ignore[attr-defined]
    ok = bool(user32.SetWindowDisplayAffinity(ctypes.c_void_p(hwnd), ctypes.c_uint32(WDA_EXCLUDEFROMCAPTURE)))
    if not ok:
        log.warning("SetWindowDisplayAffinity failed (Windows older than 10 2004?); our windows are blanked instead")
    return ok


def _exclude_on_macos(view: int) -> bool:
    objc = ctypes.cdll.LoadLibrary("/usr/lib/libobjc.A.dylib")
    objc.sel_registerName.restype = ctypes.c_void_p
    objc.sel_registerName.argtypes = [ctypes.c_char_p]
    send = objc.objc_msgSend
    send.restype = ctypes.c_void_p
    send.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    window = send(ctypes.c_void_p(view), objc.sel_registerName(b"window"))  # Qt's winId is an NSView
    if not window:
        return False
    set_sharing = ctypes.cast(objc.objc_msgSend, ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_long))
    set_sharing(window, objc.sel_registerName(b"setSharingType:"), NS_WINDOW_SHARING_NONE)
    return True
