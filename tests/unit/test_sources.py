"""Frame sources: spec parsing, a real video, an image folder, a missing camera, a real X screen."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from fermonitor.core.results import Frame
from fermonitor.core.sources import (
    ImageFolderSource,
    RegionSource,
    ScreenSource,
    SourceError,
    VideoSource,
    capture_area,
    list_cameras,
    list_screens,
    list_source_kinds,
    parse_source,
    register_source,
)


def write_counter_video(path: Path, frames: int = 25, fps: float = 10.0, fourcc: str = "MJPG") -> Path:
    """Frames whose brightness encodes their index (10 * i), 320x240."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (320, 240))
    assert writer.isOpened()
    for i in range(frames):
        writer.write(np.full((240, 320, 3), 10 * i, np.uint8))
    writer.release()
    return path


def test_registry_knows_every_kind_and_refuses_duplicates() -> None:
    assert list_source_kinds() == ["images", "region", "screen", "video", "webcam", "window"]
    with pytest.raises(ValueError, match="already registered"):
        register_source("video")(lambda argument: VideoSource(argument))


@pytest.mark.parametrize(("spec", "message"), [
    ("camera:0", "KIND:ARGUMENT"),
    ("lecture.mp4", "KIND:ARGUMENT"),
    ("webcam:first", "camera index 'first' is not a whole number"),
    ("screen:x", "screen index 'x' is not a whole number"),
    ("region:1,2,3", "X,Y,W,H"),
    ("region:0,0,0,10", "has no area"),
    ("window: ", "names no window title"),
    ("region:0,0,10,-5", "has no area"),
    ("video:", "names no file"),
    ("images:", "names no folder"),
])
def test_bad_specs_name_the_fault(spec: str, message: str) -> None:
    with pytest.raises(SourceError, match=message):
        parse_source(spec)


def test_parse_builds_unopened_sources(tmp_path: Path) -> None:
    assert isinstance(parse_source(f"video:{tmp_path / 'a.mp4'}"), VideoSource)
    assert isinstance(parse_source("screen:1"), ScreenSource)
    region = parse_source("region:10,20,300,200")
    assert isinstance(region, RegionSource)
    assert (region.x, region.y, region.width, region.height) == (10, 20, 300, 200)
    assert region.description == "region:10,20,300,200"


@pytest.mark.parametrize("fourcc,suffix", [("MJPG", ".avi"), ("mp4v", ".mp4")])
def test_video_yields_every_frame_with_its_own_timestamps(tmp_path: Path, fourcc: str, suffix: str) -> None:
    path = write_counter_video(tmp_path / f"counter{suffix}", frames=25, fps=10, fourcc=fourcc)
    with parse_source(f"video:{path}") as source:
        frames = []
        while (frame := source.read()) is not None:
            frames.append(frame)
    assert len(frames) == 25
    assert all(isinstance(f, Frame) and f.image.shape == (240, 320, 3) for f in frames)
    assert [f.index for f in frames] == list(range(25))
    assert [f.t_seconds for f in frames] == pytest.approx([i / 10 for i in range(25)], abs=1e-3)
    # Brightness says which frame was decoded: none was skipped or repeated.
    assert [round(float(f.image.mean()) / 10) for f in frames] == list(range(25))
    assert frames[0].wall_time.utcoffset() is not None


def test_video_read_from_skips_to_the_requested_time(tmp_path: Path) -> None:
    path = write_counter_video(tmp_path / "counter.avi", frames=25, fps=10)
    source = VideoSource(path)
    source.open()
    try:
        assert source.duration_s == pytest.approx(2.5)
        first = source.read_from(0.0)
        later = source.read_from(0.95)
        last = source.read_from(2.4)
        end = source.read_from(3.0)
    finally:
        source.close()
    assert first is not None and later is not None and last is not None
    assert (first.index, later.index, last.index) == (0, 10, 24)
    assert later.t_seconds == pytest.approx(1.0, abs=1e-3)
    assert round(float(later.image.mean()) / 10) == 10
    assert end is None


def test_unreadable_and_missing_videos_are_named(tmp_path: Path) -> None:
    not_a_video = tmp_path / "notes.mp4"
    not_a_video.write_text("this is not a video\n")
    with pytest.raises(SourceError, match=r"notes\.mp4 cannot be read"):
        VideoSource(not_a_video).open()
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(write_counter_video(tmp_path / "full.mp4", fourcc="mp4v").read_bytes()[:400])
    with pytest.raises(SourceError, match=r"truncated\.mp4 cannot be read"):
        VideoSource(truncated).open()
    with pytest.raises(SourceError, match=r"missing\.mp4 does not exist"):
        parse_source(f"video:{tmp_path / 'missing.mp4'}").open()


def test_image_folder_in_name_order(tmp_path: Path) -> None:
    for i, name in enumerate(["b.png", "a.jpg", "c.bmp"]):
        cv2.imwrite(str(tmp_path / name), np.full((40, 60, 3), 50 * (i + 1), np.uint8))
    (tmp_path / "notes.txt").write_text("ignored")
    with parse_source(f"images:{tmp_path}") as source:
        frames = []
        while (frame := source.read()) is not None:
            frames.append(frame)
    assert [f.index for f in frames] == [0, 1, 2]
    assert [f.t_seconds for f in frames] == [0.0, 1.0, 2.0]
    # a.jpg (100), b.png (50), c.bmp (150): name order, not writing order.
    assert [round(float(f.image.mean()) / 50) for f in frames] == [2, 1, 3]


def test_image_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="does not exist"):
        ImageFolderSource(tmp_path / "nowhere").open()
    with pytest.raises(SourceError, match="holds no images"):
        ImageFolderSource(tmp_path).open()
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with ImageFolderSource(tmp_path) as source, pytest.raises(SourceError, match=r"broken\.png cannot be read"):
        source.read()


def test_missing_camera_is_named() -> None:
    with pytest.raises(SourceError, match="no camera at index 57"):
        parse_source("webcam:57").open()


@pytest.mark.skipif(sys.platform != "linux", reason="Linux names its cameras /dev/video*")
def test_listing_cameras_finds_none_on_a_machine_without_one() -> None:
    if any(Path("/dev").glob("video*")):
        pytest.skip("this machine has a video device")
    assert list_cameras(max_index=2) == []


def test_negative_camera_index() -> None:
    with pytest.raises(SourceError, match="negative"):
        parse_source("webcam:-1")


@pytest.mark.xvfb
def test_screen_capture_on_a_real_x_server(xvfb_display: str) -> None:
    screens = list_screens()
    assert [(s.index, s.width, s.height) for s in screens] == [(1, 1280, 720)]
    with parse_source("screen:1") as source:
        first = source.read()
        second = source.read()
    assert first is not None and second is not None
    assert first.image.shape == (720, 1280, 3) and first.image.dtype == np.uint8
    assert first.image.flags["C_CONTIGUOUS"]
    assert second.index == 1 and second.t_seconds >= first.t_seconds


@pytest.mark.xvfb
def test_region_is_that_rectangle_of_the_screen(xvfb_display: str) -> None:
    with parse_source("screen:1") as screen:
        full = screen.read()
    with parse_source("region:100,50,320,240") as region:
        part = region.read()
    assert full is not None and part is not None
    assert part.image.shape == (240, 320, 3)
    np.testing.assert_array_equal(part.image, full.image[50:290, 100:420])


@pytest.mark.xvfb
@pytest.mark.parametrize(("spec", "message"), [
    ("screen:2", r"screen index 2 is out of range: valid screens are 1 "),
    ("screen:-1", "out of range"),
    ("region:1200,0,200,100", r"outside the screens, which span x 0-1280 and y 0-720"),
    ("region:-10,0,100,100", "outside the screens"),
])
def test_screen_errors(xvfb_display: str, spec: str, message: str) -> None:
    with pytest.raises(SourceError, match=message):
        parse_source(spec).open()


@pytest.mark.xvfb
def test_a_window_is_captured_by_title_and_followed_when_it_moves(xvfb_display: str, show_on_x: object) -> None:
    rng = np.random.default_rng(0)
    picture = rng.integers(0, 255, size=(120, 200, 3), dtype=np.uint8)
    shown = show_on_x(picture, 40, 30, title="Zoom Meeting - Gallery")  # type: ignore[operator]
    source = parse_source("window:zoom meeting")
    assert capture_area(source) == (40, 30, 200, 120)
    with source:
        first = source.read()
        shown.move(700, 400)
        moved = source.read()
        shown.move(1200, 650)  # partly off the 1280x720 screen: the rest is black
        clipped = source.read()
    assert first is not None and moved is not None and clipped is not None
    np.testing.assert_array_equal(first.image, picture)
    np.testing.assert_array_equal(moved.image, picture)
    assert source.area == (1200, 650, 200, 120)
    np.testing.assert_array_equal(clipped.image[:70, :80], picture[:70, :80])
    assert not clipped.image[70:].any() and not clipped.image[:, 80:].any()


@pytest.mark.xvfb
def test_a_missing_window_title_lists_the_open_windows(xvfb_display: str, show_on_x: object) -> None:
    show_on_x(np.zeros((40, 60, 3), np.uint8), 0, 0, title="Class notes")  # type: ignore[operator]
    with pytest.raises(SourceError, match=r"^no open window's title contains 'Zoom'; open windows: .*'Class notes'"):
        parse_source("window:Zoom").open()
    assert capture_area(parse_source("window:Zoom")) is None


@pytest.mark.xvfb
def test_our_own_windows_are_blanked_in_every_grab(xvfb_display: str, show_on_x: object) -> None:
    show_on_x(np.full((100, 100, 3), 200, np.uint8), 0, 0)  # type: ignore[operator]
    with parse_source("region:0,0,100,100") as source:
        source.excluded = ((50, 0, 300, 300),)
        frame = source.read()
    assert frame is not None
    assert (frame.image[:, :50] == 200).all() and not frame.image[:, 50:].any()
    assert source.blanked_share == pytest.approx(0.5)


def test_screen_without_a_display_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISPLAY", ":9999")
    with pytest.raises(SourceError, match="screen cannot be captured"):
        parse_source("screen:1").open()
    assert list_screens() == []


@pytest.mark.parametrize("spec", ["webcam:0", "screen:1", "region:0,0,64,48", "window:Zoom", "video:lecture.mp4"])
def test_reading_a_source_that_is_not_open_names_it(spec: str) -> None:
    with pytest.raises(SourceError, match=rf"^{re.escape(spec)} is not open$"):
        parse_source(spec).read()
