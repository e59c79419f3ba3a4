"""The detector registry and the Haar detector on real FER+ faces."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from fermonitor.core.detection import (
    DetectorError,
    HaarDetector,
    create_detector,
    downscale,
    list_detectors,
    register_detector,
)

FACES_CHECKED = 20
MIN_RECALL = 0.7  # 0.81 measured on 80 PublicTest faces at this size and these settings


def found(boxes: list[tuple[int, int, int, int]], x: int, y: int, side: int) -> bool:
    """Whether a box's centre lies within a third of the face size from the placed face's centre."""
    cx, cy = x + side / 2, y + side / 2
    return any(abs(bx + bw / 2 - cx) < side / 3 and abs(by + bh / 2 - cy) < side / 3 and 0.5 < bw / side < 2
               for bx, by, bw, bh in boxes)


def test_registry() -> None:
    assert "haar" in list_detectors()
    with pytest.raises(DetectorError, match="unknown detector 'yolo'; available: haar"):
        create_detector("yolo")
    with pytest.raises(DetectorError, match="bad options"):
        create_detector("haar", sharpness=3)
    with pytest.raises(ValueError, match="already registered"):
        register_detector("haar")(HaarDetector)


def test_missing_cascade_is_named(tmp_path: Path) -> None:
    with pytest.raises(DetectorError, match=r"Haar cascade file .*nowhere\.xml is missing"):
        create_detector("haar", cascade=tmp_path / "nowhere.xml")
    broken = tmp_path / "broken.xml"
    broken.write_text("<opencv_storage></opencv_storage>")
    with pytest.raises(DetectorError, match="cannot be loaded"):
        create_detector("haar", cascade=broken)


def test_bad_options() -> None:
    with pytest.raises(DetectorError, match="scale_factor"):
        HaarDetector(scale_factor=1.0)
    with pytest.raises(DetectorError, match="max_side_px"):
        HaarDetector(max_side_px=10)


def test_downscale_keeps_small_images() -> None:
    grey = np.zeros((480, 1280), np.uint8)
    small, scale = downscale(grey, 640)
    assert small.shape == (240, 640) and scale == 0.5
    same, one = downscale(np.zeros((100, 200), np.uint8), 640)
    assert same.shape == (100, 200) and one == 1.0


def test_blank_image_has_no_faces() -> None:
    assert create_detector().detect(np.full((240, 320, 3), 128, np.uint8)) == []


def face_on_canvas(face: np.ndarray, side: int, border: int, paste_faces) -> np.ndarray:
    canvas = np.full((side + 2 * border, side + 2 * border, 3), 128, np.uint8)
    paste_faces(canvas, face[None], [(border, border)], side)
    return canvas


def test_haar_recall_on_real_faces(fer_faces: tuple[np.ndarray, np.ndarray], paste_faces) -> None:
    images, _ = fer_faces
    side = 128
    # min_face_px only skips search scales far below the faces here, which keeps the test cheap.
    detector = create_detector("haar", min_face_px=side // 2)
    hits = sum(found(detector.detect(face_on_canvas(face, side, 40, paste_faces)), 40, 40, side)
               for face in images[:FACES_CHECKED])
    assert hits / FACES_CHECKED >= MIN_RECALL


def test_boxes_map_back_to_source_pixels(fer_faces: tuple[np.ndarray, np.ndarray], paste_faces) -> None:
    """A 1280x720 gallery is detected on a 640 px copy; boxes come back in 1280x720 pixels."""
    images, _ = fer_faces
    side = 160  # 80 px in the detector's half-size copy
    detector = create_detector("haar", max_side_px=640, min_face_px=100)
    # Four faces the cascade finds at the size it will see them (80 px), checked on small canvases.
    small = create_detector("haar", min_face_px=50)
    chosen = []
    for face in images[FACES_CHECKED:]:
        if found(small.detect(face_on_canvas(face, side // 2, 20, paste_faces)), 20, 20, side // 2):
            chosen.append(face)
        if len(chosen) == 4:
            break
    assert len(chosen) == 4
    canvas = np.full((720, 1280, 3), 128, np.uint8)
    positions = [(101 + k * 290, 281) for k in range(4)]
    paste_faces(canvas, np.stack(chosen), positions, side)
    boxes = detector.detect(canvas)
    for x, y in positions:
        assert found(boxes, x, y, side), f"face at {x},{y} not found in {boxes}"
    assert all(0 <= bx and bx + bw <= 1280 and 0 <= by and by + bh <= 720 for bx, by, bw, bh in boxes)
    # BGRA and grey inputs give the same boxes.
    assert detector.detect(cv2.cvtColor(canvas, cv2.COLOR_BGR2BGRA)) == boxes
