"""Frame sources (webcam, screen, screen region, window, video file, image folder) behind one registry."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import cv2
import numpy as np

from fermonitor.core.registry import Registry
from fermonitor.core.results import Frame
from fermonitor.core.windows import WindowError, WindowInfo, WindowList, find_window

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
# A webcam may miss a frame now and then; this many failed reads in a row mean it is gone.
WEBCAM_MAX_FAILED_READS = 10


class SourceError(ValueError):
    """A source that cannot be parsed, opened or read; the message names it and the fault."""


class FrameSource:
    """Base class of every source: a context manager yielding :class:`Frame` objects.

    The device is opened in :meth:`open`, not in the constructor, so that a worker thread can
    open it inside that thread (screen grabbers and some camera backends are bound to the thread
    that created them).
    """

    description: str = "source"

    def open(self) -> None:
        """Open the device or file.

        Raises
        ------
        SourceError
            When it cannot be opened.
        """
        raise NotImplementedError

    def read(self) -> Frame | None:
        """The next frame, or ``None`` when the source has ended.

        Raises
        ------
        SourceError
            When the source fails (a camera unplugged, a screen gone).
        """
        raise NotImplementedError

    def close(self) -> None:
        """Release the device; calling it twice is harmless."""
        raise NotImplementedError

    def __enter__(self) -> FrameSource:
        self.open()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.description}>"


SourceFactory = Callable[[str], FrameSource]
# A factory builds a source from the text after ``kind:`` in a spec.
_REGISTRY: Registry[SourceFactory] = Registry("source kind")
register_source = _REGISTRY.register
unregister_source = _REGISTRY.unregister
list_source_kinds = _REGISTRY.names


def parse_source(spec: str) -> FrameSource:
    """Build a (not yet opened) source from a spec such as ``webcam:0`` or ``video:lecture.mp4``.

    Raises
    ------
    SourceError
        For a spec without a known kind or with a malformed argument.
    """
    kind, sep, argument = spec.partition(":")
    if not sep or kind not in _REGISTRY:
        raise SourceError(
            f"source {spec!r} is not of the form KIND:ARGUMENT with KIND one of {', '.join(list_source_kinds())}"
        )
    return _REGISTRY[kind](argument)


@contextmanager
def _quiet_opencv() -> Iterator[None]:
    """Silence OpenCV's own log while probing cameras: absent ones get our clearer message."""
    previous = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        cv2.utils.logging.setLogLevel(previous)


def _now() -> datetime:
    return datetime.now().astimezone()


def _parse_int(spec: str, text: str, what: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise SourceError(f"source {spec!r}: {what} {text!r} is not a whole number") from None


class _LiveSource(FrameSource):
    """Shared clock and counter of live sources: t_seconds from open(), wall time at capture."""

    def __init__(self) -> None:
        self._start = 0.0
        self._index = 0

    def restart_clock(self) -> None:
        """Count t_seconds and frame indices from now (open() does this too)."""
        self._start = time.monotonic()
        self._index = 0

    def _frame(self, image: np.ndarray) -> Frame:
        frame = Frame(image=image, t_seconds=time.monotonic() - self._start, index=self._index, wall_time=_now())
        self._index += 1
        return frame


class WebcamSource(_LiveSource):
    """A camera through ``cv2.VideoCapture(index)``."""

    def __init__(self, index: int) -> None:
        super().__init__()
        if index < 0:
            raise SourceError(f"camera index {index} is negative")
        self.index = index
        self.description = f"webcam:{index}"
        self._capture: cv2.VideoCapture | None = None

    def open(self) -> None:
        with _quiet_opencv():
            capture = cv2.VideoCapture(self.index)
        if not capture.isOpened():
            capture.release()
            raise SourceError(f"no camera at index {self.index}")
        self._capture = capture
        self.restart_clock()
        log.info("opened %s (%dx%d)", self.description, int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
                 int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))

    def read(self) -> Frame | None:
        if self._capture is None:
            raise SourceError(f"{self.description} is not open")
        for _ in range(WEBCAM_MAX_FAILED_READS):
            ok, image = self._capture.read()
            if ok and image is not None:
                return self._frame(image)
        raise SourceError(f"camera at index {self.index} stopped delivering frames (unplugged or in use?)")

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


@register_source("webcam")
def _webcam(argument: str) -> FrameSource:
    return WebcamSource(_parse_int(f"webcam:{argument}", argument, "camera index"))


@dataclass(frozen=True)
class ScreenInfo:
    """One monitor as mss numbers it (1-based; 0 is the union of all)."""

    index: int
    left: int
    top: int
    width: int
    height: int

    def label(self) -> str:
        return f"screen {self.index}: {self.width}x{self.height} at {self.left},{self.top}"


def _mss() -> Any:
    """A new mss grabber (bound to the calling thread); a clear error when no display is there."""
    import mss
    import mss.exception

    factory = getattr(mss, "MSS", None) or mss.mss  # mss >= 10.2 names the class; older ones a function
    try:
        return factory()
    except mss.exception.ScreenShotError as exc:
        raise SourceError(f"the screen cannot be captured ({exc})") from exc


def list_screens() -> list[ScreenInfo]:
    """Every monitor (1-based, like mss); empty when there is no display to capture."""
    try:
        grabber = _mss()
    except SourceError as exc:
        log.info("no screens to list: %s", exc)
        return []
    with grabber:
        return [ScreenInfo(i, m["left"], m["top"], m["width"], m["height"])
                for i, m in enumerate(grabber.monitors) if i > 0]


Rect = tuple[int, int, int, int]  # left, top, width, height in screen pixels


def intersect(a: Rect, b: Rect) -> Rect | None:
    """The overlap of two rectangles, or None."""
    left, top = max(a[0], b[0]), max(a[1], b[1])
    right, bottom = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    return (left, top, right - left, bottom - top) if right > left and bottom > top else None


def blank(image: np.ndarray, area: Rect, rects: tuple[Rect, ...]) -> int:
    """Black out in ``image`` (which shows ``area`` of the screen) the parts of ``rects``; pixels blanked."""
    blanked = np.zeros(image.shape[:2], bool)
    for rect in rects:
        overlap = intersect(area, rect)
        if overlap is not None:
            x, y, w, h = overlap[0] - area[0], overlap[1] - area[1], overlap[2], overlap[3]
            blanked[y:y + h, x:x + w] = True
    image[blanked] = 0
    return int(blanked.sum())


class _MssSource(_LiveSource):
    """Grabs a rectangle of the screen with mss; the grabber is created in open().

    ``excluded`` holds screen rectangles that are never analysed (fermonitor's own windows): the
    UI thread replaces the tuple whenever its windows move, and every grab blacks out its
    overlap with them. ``area`` and ``blanked_share`` tell the UI what the last grab covered.
    """

    def __init__(self) -> None:
        super().__init__()
        self._grabber: Any = None
        self._rect: dict[str, int] | None = None
        self.excluded: tuple[Rect, ...] = ()
        self.area: Rect | None = None
        self.blanked_share = 0.0

    def _resolve(self, monitors: list[dict[str, int]]) -> dict[str, int]:
        raise NotImplementedError

    def current_area(self) -> Rect:
        """The screen rectangle to grab now (a window source follows its window)."""
        assert self._rect is not None
        return self._rect["left"], self._rect["top"], self._rect["width"], self._rect["height"]

    def open(self) -> None:
        grabber = _mss()
        try:
            self._rect = self._resolve(grabber.monitors)
        except SourceError:
            grabber.close()
            raise
        self._grabber = grabber
        self.area = self.current_area()
        self.restart_clock()
        log.info("opened %s (%s)", self.description, self._rect)

    def _grab(self, area: Rect) -> np.ndarray:
        """The pixels of ``area`` (BGR); the parts outside every screen come back black."""
        import mss.exception

        union = self._grabber.monitors[0]
        visible = intersect(area, (union["left"], union["top"], union["width"], union["height"]))
        image = np.zeros((area[3], area[2], 3), np.uint8)
        if visible is None:
            return image
        try:
            shot = self._grabber.grab({"left": visible[0], "top": visible[1], "width": visible[2],
                                       "height": visible[3]})
        except mss.exception.ScreenShotError as exc:
            raise SourceError(f"{self.description} could not be captured ({exc})") from exc
        x, y = visible[0] - area[0], visible[1] - area[1]
        image[y:y + visible[3], x:x + visible[2]] = np.asarray(shot)[:, :, :3]
        return image

    def read(self) -> Frame | None:
        if self._grabber is None or self._rect is None:
            raise SourceError(f"{self.description} is not open")
        area = self.current_area()
        image = self._grab(area)
        excluded = self.excluded  # one read: the UI thread may replace it meanwhile
        self.blanked_share = blank(image, area, excluded) / max(1, area[2] * area[3]) if excluded else 0.0
        self.area = area
        return self._frame(image)

    def close(self) -> None:
        if self._grabber is not None:
            self._grabber.close()
            self._grabber = None


class ScreenSource(_MssSource):
    """A whole monitor, numbered as mss does: 1 is the first screen, 0 all screens together."""

    def __init__(self, index: int) -> None:
        super().__init__()
        self.index = index
        self.description = f"screen:{index}"

    def _resolve(self, monitors: list[dict[str, int]]) -> dict[str, int]:
        count = len(monitors) - 1
        if not 0 <= self.index <= count:
            valid = f"1-{count}" if count > 1 else "1"
            raise SourceError(f"screen index {self.index} is out of range: valid screens are {valid} "
                              "(0 = all screens together)")
        return dict(monitors[self.index])


@register_source("screen")
def _screen(argument: str) -> FrameSource:
    return ScreenSource(_parse_int(f"screen:{argument}", argument, "screen index"))


class RegionSource(_MssSource):
    """A rectangle of the desktop in virtual-screen pixels, e.g. a video call's gallery."""

    def __init__(self, x: int, y: int, width: int, height: int) -> None:
        super().__init__()
        if width <= 0 or height <= 0:
            raise SourceError(f"region {x},{y},{width},{height} has no area (width and height must be above 0)")
        self.x, self.y, self.width, self.height = x, y, width, height
        self.description = f"region:{x},{y},{width},{height}"

    def _resolve(self, monitors: list[dict[str, int]]) -> dict[str, int]:
        union = monitors[0]
        left, top = union["left"], union["top"]
        right, bottom = left + union["width"], top + union["height"]
        if self.x < left or self.y < top or self.x + self.width > right or self.y + self.height > bottom:
            raise SourceError(
                f"region {self.x},{self.y},{self.width},{self.height} is outside the screens, "
                f"which span x {left}-{right} and y {top}-{bottom}"
            )
        return {"left": self.x, "top": self.y, "width": self.width, "height": self.height}


@register_source("region")
def _region(argument: str) -> FrameSource:
    spec = f"region:{argument}"
    parts = argument.split(",")
    if len(parts) != 4:
        raise SourceError(f"source {spec!r}: a region is X,Y,W,H (four whole numbers)")
    x, y, w, h = (_parse_int(spec, p, name) for p, name in zip(parts, ("X", "Y", "W", "H"), strict=True))
    return RegionSource(x, y, w, h)


class WindowSource(_MssSource):
    """The first top-level window whose title contains ``title`` (ignoring case), followed as it
    moves and resizes; frames are the window's content, boxes in its pixels. While the window is
    hidden or minimised the frames are black; once it is closed the source fails."""

    def __init__(self, title: str) -> None:
        super().__init__()
        if not title.strip():
            raise SourceError("source 'window:' names no window title")
        self.title = title
        self.description = f"window:{title}"
        self._windows: WindowList | None = None
        self._window: WindowInfo | None = None
        self._last_area: Rect | None = None

    def _resolve(self, monitors: list[dict[str, int]]) -> dict[str, int]:
        try:
            self._windows = WindowList()
            self._window = find_window(self._windows.windows(), self.title)
        except WindowError as exc:
            self.close()
            raise SourceError(str(exc)) from None
        left, top, width, height = self._window.rect
        self._last_area = self._window.rect
        log.info("window %r found for %s", self._window.title, self.description)
        return {"left": left, "top": top, "width": width, "height": height}

    def current_area(self) -> Rect:
        assert self._windows is not None and self._window is not None and self._last_area is not None
        try:
            rect = self._windows.geometry(self._window)
        except WindowError as exc:
            raise SourceError(str(exc)) from None
        if rect is None or rect[2] <= 0 or rect[3] <= 0:
            return (-1_000_000, -1_000_000, self._last_area[2], self._last_area[3])  # off every screen: black
        self._last_area = rect
        return rect

    def close(self) -> None:
        super().close()
        if self._windows is not None:
            self._windows.close()
            self._windows = None


@register_source("window")
def _window(argument: str) -> FrameSource:
    return WindowSource(argument)


def capture_area(source: FrameSource) -> Rect | None:
    """The screen rectangle a screen, region or window source captures now; None for other kinds or
    when it cannot be told (no display, no such window: opening the source reports those)."""
    if isinstance(source, RegionSource):
        return source.x, source.y, source.width, source.height
    if isinstance(source, ScreenSource):
        screens = {s.index: (s.left, s.top, s.width, s.height) for s in list_screens()}
        if source.index == 0 and screens:
            left, top = min(r[0] for r in screens.values()), min(r[1] for r in screens.values())
            right = max(r[0] + r[2] for r in screens.values())
            bottom = max(r[1] + r[3] for r in screens.values())
            return left, top, right - left, bottom - top
        return screens.get(source.index)
    if isinstance(source, WindowSource):
        try:
            windows = WindowList()
        except WindowError:
            return None
        try:
            return find_window(windows.windows(), source.title).rect
        except WindowError:
            return None
        finally:
            windows.close()
    return None


MAX_VIDEO_FPS = 1000.0  # above any camera's rate: a container that declares more is broken


class VideoSource(FrameSource):
    """A video file OpenCV can read; timestamps are the video's own (its presentation times).

    ``decode_seconds`` and ``convert_seconds`` add up the time spent decoding frames (every frame,
    also those skipped) and converting the frames returned to BGR arrays.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.description = f"video:{self.path}"
        self._capture: cv2.VideoCapture | None = None
        self._index = -1  # index of the frame last grabbed
        self._last_t = -math.inf
        self.fps = 0.0
        self.frame_count = 0
        self.decode_seconds = 0.0
        self.convert_seconds = 0.0

    def open(self) -> None:
        if not self.path.is_file():
            raise SourceError(f"video {self.path} does not exist")
        capture = cv2.VideoCapture(str(self.path))
        if not capture.isOpened():
            capture.release()
            raise SourceError(f"video {self.path} cannot be read (not a video OpenCV can decode)")
        fps = capture.get(cv2.CAP_PROP_FPS)
        if math.isfinite(fps) and fps > MAX_VIDEO_FPS:
            capture.release()
            raise SourceError(f"video {self.path} declares {fps:g} frames per second, more than any camera "
                              f"records ({MAX_VIDEO_FPS:g}): its frame times cannot be trusted")
        self.fps = fps if math.isfinite(fps) and fps > 0 else 0.0
        self.frame_count = max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT)))
        self._capture = capture
        self._index = -1
        self._last_t = -math.inf
        log.info("opened %s (%.3g fps, %d frames)", self.description, self.fps, self.frame_count)

    @property
    def duration_s(self) -> float:
        """Length from the container's frame count and rate; 0 when unknown."""
        return self.frame_count / self.fps if self.fps else 0.0

    def _grabbed_time(self) -> float:
        """The presentation time of the frame just grabbed, seconds."""
        assert self._capture is not None
        t = self._capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
        # Some backends do not report times; fall back to the frame rate.
        if (not math.isfinite(t) or (self._index > 0 and t <= self._last_t)) and self.fps:
            t = self._index / self.fps
        return t

    def read(self) -> Frame | None:
        return self.read_from(-math.inf)

    def read_from(self, t_seconds: float) -> Frame | None:
        """The first frame at or after ``t_seconds`` of video time, or ``None`` at the end.

        Frames before it are grabbed without being decoded, so skipping is cheap.
        """
        if self._capture is None:
            raise SourceError(f"{self.description} is not open")
        started = time.perf_counter()
        while True:
            if not self._capture.grab():
                self.decode_seconds += time.perf_counter() - started
                return None
            self._index += 1
            t = self._grabbed_time()
            self._last_t = t
            if t >= t_seconds - 1e-6:
                break
        grabbed = time.perf_counter()
        ok, image = self._capture.retrieve()
        self.decode_seconds += grabbed - started
        self.convert_seconds += time.perf_counter() - grabbed
        if not ok or image is None:
            if self._index == 0:
                raise SourceError(f"video {self.path} cannot be read (its first frame does not decode)")
            log.warning("%s: frame %d does not decode; treating it as the end", self.description, self._index)
            return None
        return Frame(image=image, t_seconds=t, index=self._index, wall_time=_now())

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


@register_source("video")
def _video(argument: str) -> FrameSource:
    if not argument:
        raise SourceError("source 'video:' names no file")
    return VideoSource(argument)


class ImageFolderSource(FrameSource):
    """The images of a folder in name order, ``interval_s`` apart on the source's clock."""

    def __init__(self, folder: str | Path, interval_s: float = 1.0) -> None:
        if interval_s <= 0:
            raise SourceError(f"image interval {interval_s} s must be above 0")
        self.folder = Path(folder)
        self.interval_s = interval_s
        self.description = f"images:{self.folder}"
        self._paths: list[Path] = []
        self._index = 0

    def open(self) -> None:
        if not self.folder.is_dir():
            raise SourceError(f"image folder {self.folder} does not exist")
        self._paths = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self._paths:
            raise SourceError(f"image folder {self.folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        self._index = 0

    def read(self) -> Frame | None:
        if self._index >= len(self._paths):
            return None
        path = self._paths[self._index]
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise SourceError(f"image {path} cannot be read")
        frame = Frame(image=image, t_seconds=self._index * self.interval_s, index=self._index, wall_time=_now())
        self._index += 1
        return frame

    def close(self) -> None:
        self._paths = []


@register_source("images")
def _images(argument: str) -> FrameSource:
    if not argument:
        raise SourceError("source 'images:' names no folder")
    return ImageFolderSource(argument)


def list_cameras(max_index: int = 4) -> list[int]:
    """Indices below ``max_index`` where a camera opens; empty when there is none."""
    found = []
    with _quiet_opencv():
        for index in range(max_index):
            capture = cv2.VideoCapture(index)
            if capture.isOpened():
                found.append(index)
            capture.release()
    return found
