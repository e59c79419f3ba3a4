"""Top-level windows of the desktop by title, with their geometry in screen pixels.

On X11 (Linux) python-xlib asks the X server: the window manager's client list
(``_NET_CLIENT_LIST``) when one runs, else the root window's mapped children that carry a name (a
bare X server such as Xvfb). On Windows and macOS pywinctl does the same through the system's own
interfaces. Geometry is the window's content area in the coordinates mss captures in.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any


class WindowError(ValueError):
    """No such window, or windows cannot be listed here; the message says which and why."""


@dataclass(frozen=True)
class WindowInfo:
    """One top-level window: its title, content rectangle in screen pixels and a handle to follow it."""

    title: str
    left: int
    top: int
    width: int
    height: int
    handle: Any  # an X window id, or a pywinctl window

    @property
    def rect(self) -> tuple[int, int, int, int]:
        return self.left, self.top, self.width, self.height


class WindowList:
    """A connection to the windowing system, for listing windows and re-reading one's geometry.

    Open it in the thread that uses it (an X connection is not shared between threads) and
    :meth:`close` it when done.
    """

    def __init__(self) -> None:
        self._x11 = _X11() if sys.platform.startswith("linux") else None
        if self._x11 is None:
            try:
                import pywinctl  # noqa: F401  (Windows and macOS only; see pyproject.toml)
            except ImportError as exc:
                raise WindowError(f"windows cannot be listed on {sys.platform} without pywinctl "
                                  "(pip install pywinctl)") from exc

    def windows(self) -> list[WindowInfo]:
        """Every shown top-level window with a title, front-most last where the system says so."""
        if self._x11 is not None:
            return self._x11.windows()
        import pywinctl

        return [WindowInfo(w.title, w.left, w.top, w.width, w.height, w)
                for w in pywinctl.getAllWindows() if w.title and w.isVisible and w.width > 0 and w.height > 0]

    def geometry(self, window: WindowInfo) -> tuple[int, int, int, int] | None:
        """The window's current (left, top, width, height), or None while it is hidden or minimised.

        Raises
        ------
        WindowError
            Once the window is closed.
        """
        if self._x11 is not None:
            return self._x11.geometry(window.handle, window.title)
        handle = window.handle
        try:
            alive = handle.isAlive
            shown = handle.isVisible and not handle.isMinimized
            rect = handle.left, handle.top, handle.width, handle.height
        except Exception:  # the window went away between the calls
            alive = False
        if not alive:
            raise WindowError(f"window {window.title!r} was closed")
        return rect if shown else None

    def close(self) -> None:
        if self._x11 is not None:
            self._x11.close()


def find_window(windows: list[WindowInfo], title: str) -> WindowInfo:
    """The first window whose title contains ``title``, ignoring case.

    Raises
    ------
    WindowError
        When none does; the message lists the open windows' titles.
    """
    wanted = title.casefold()
    for window in windows:
        if wanted in window.title.casefold():
            return window
    titles = ", ".join(repr(w.title) for w in windows) or "none"
    raise WindowError(f"no open window's title contains {title!r}; open windows: {titles}")


def list_windows() -> list[WindowInfo]:
    """The shown top-level windows with a title; empty when they cannot be listed here."""
    try:
        windows = WindowList()
    except WindowError:
        return []
    try:
        return windows.windows()
    finally:
        windows.close()


class _X11:
    """The X11 side of :class:`WindowList`, on python-xlib."""

    def __init__(self) -> None:
        try:
            from Xlib import X, display, error
        except ImportError as exc:
            raise WindowError("windows cannot be listed without python-xlib (pip install python-xlib)") from exc
        self._X, self._error = X, error
        try:
            self._display = display.Display()
        except Exception as exc:  # Xlib raises its own DisplayError types, and OSError
            raise WindowError(f"the X display {os.environ.get('DISPLAY', '(DISPLAY not set)')} cannot be "
                              f"opened to list windows ({exc})") from exc
        self._root = self._display.screen().root
        atom = self._display.intern_atom
        self._client_list = atom("_NET_CLIENT_LIST")
        self._net_name = atom("_NET_WM_NAME")
        self._utf8 = atom("UTF8_STRING")

    def close(self) -> None:
        self._display.close()

    def _title(self, window: Any) -> str:
        prop = window.get_full_property(self._net_name, self._utf8)
        if prop is not None and prop.value:
            value = prop.value
            return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
        name = window.get_wm_name()
        if isinstance(name, bytes):
            return name.decode("latin-1")
        return name or ""

    def _candidates(self) -> list[Any]:
        prop = self._root.get_full_property(self._client_list, self._X.AnyPropertyType)
        if prop is not None and len(prop.value):
            return [self._display.create_resource_object("window", wid) for wid in prop.value]
        return list(self._root.query_tree().children)  # bottom to top

    def windows(self) -> list[WindowInfo]:
        found = []
        for window in self._candidates():
            try:
                if window.get_attributes().map_state != self._X.IsViewable:
                    continue
                title = self._title(window)
                rect = self.geometry(window.id, title)
            except (self._error.XError, WindowError):  # closed while we looked
                continue
            if title and rect is not None:
                found.append(WindowInfo(title, *rect, handle=window.id))
        return found

    def geometry(self, window_id: int, title: str) -> tuple[int, int, int, int] | None:
        window = self._display.create_resource_object("window", window_id)
        try:
            if window.get_attributes().map_state != self._X.IsViewable:
                return None
            geometry = window.get_geometry()
            origin = window.translate_coords(self._root, 0, 0)
        except self._error.XError as exc:
            raise WindowError(f"window {title!r} was closed") from exc
        # translate_coords gives the root's origin in the window's coordinates: negate it.
        return -origin.x, -origin.y, int(geometry.width), int(geometry.height)


Rect = tuple[int, int, int, int]  # left, top, width, height


def place_beside(area: Rect, size: tuple[int, int], screens: list[Rect]) -> tuple[int, int] | None:
    """Where a window of ``size`` fits on one of ``screens`` without covering ``area``: its top-left
    corner right of, left of, below or above the area (in that order), or None when it fits nowhere."""
    width, height = size
    ax, ay, aw, ah = area
    for sx, sy, sw, sh in screens:
        if width > sw or height > sh:
            continue
        for x, y in ((ax + aw, ay), (ax - width, ay), (ax, ay + ah), (ax, ay - height)):
            x = min(max(x, sx), sx + sw - width)
            y = min(max(y, sy), sy + sh - height)
            apart = x + width <= ax or x >= ax + aw or y + height <= ay or y >= ay + ah
            if apart:
                return x, y
    return None
