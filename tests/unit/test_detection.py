"""The detector registry, the YuNet and Haar detectors on real FER+ faces, YuNet's model file check."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from fermonitor.core.detection import (
    YUNET_SHA256,
    Detection,
    DetectorError,
    HaarDetector,
    YuNetDetector,
    create_detector,
    detector_from_settings,
    downscale,
    list_detectors,
    register_detector,
    suppress_nested,
)
from fermonitor.core.onnx_backend import cpu_session_options
from fermonitor.core.resources import yunet_model_path
from fermonitor.core.settings import AnalysisSettings

FACES_CHECKED = 20
MIN_RECALL = 0.7  # 0.81 measured on 80 PublicTest faces at this size and these settings


def found(faces: list[Detection], x: int, y: int, side: int) -> bool:
    """Whether a box's centre lies within a third of the face size from the placed face's centre."""
    cx, cy = x + side / 2, y + side / 2
    return any(abs(bx + bw / 2 - cx) < side / 3 and abs(by + bh / 2 - cy) < side / 3 and 0.5 < bw / side < 2
               for bx, by, bw, bh in (f.box for f in faces))


def test_registry() -> None:
    assert list_detectors() == ["haar", "yunet"]
    assert isinstance(create_detector(), YuNetDetector)  # the default
    with pytest.raises(DetectorError, match="unknown detector 'yolo'; available: haar, yunet"):
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
    for name in list_detectors():
        assert create_detector(name).detect(np.full((240, 320, 3), 128, np.uint8)) == []


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
    assert all(0 <= bx and bx + bw <= 1280 and 0 <= by and by + bh <= 720 for bx, by, bw, bh in (b.box for b in boxes))
    # BGRA and grey inputs give the same boxes.
    assert detector.detect(cv2.cvtColor(canvas, cv2.COLOR_BGR2BGRA)) == boxes


# --- YuNet --------------------------------------------------------------------------------------

GALLERY_RECALL_FLOOR = {"yunet": 0.9, "haar": 0.5}  # measured on these 25 faces: yunet 25, haar 16


def rolled_gallery(faces: np.ndarray) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
    """A 1280x720 5x5 call gallery of real faces, 60-100 px, rolled up to 20 degrees; (x, y, side) each."""
    rng = np.random.default_rng(7)
    image = np.full((720, 1280, 3), (58, 62, 66), np.uint8)
    placed = []
    for i, face in enumerate(faces[:25]):
        side = int(rng.integers(60, 101))
        x = (i % 5) * 256 + (256 - side) // 2
        y = (i // 5) * 144 + (144 - side) // 2
        big = cv2.cvtColor(cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC), cv2.COLOR_GRAY2BGR)
        turn = cv2.getRotationMatrix2D((side / 2, side / 2), float(rng.uniform(-20, 20)), 1.0)
        mask = cv2.warpAffine(np.full((side, side), 255, np.uint8), turn, (side, side)) > 127
        image[y:y + side, x:x + side][mask] = cv2.warpAffine(big, turn, (side, side))[mask]
        placed.append((x, y, side))
    return image, placed


@pytest.mark.parametrize("name", ["yunet", "haar"])
def test_recall_on_a_gallery_of_real_faces(name: str, fer_faces: tuple[np.ndarray, np.ndarray]) -> None:
    image, placed = rolled_gallery(fer_faces[0])
    detector = detector_from_settings(AnalysisSettings(detector=name))
    faces = detector.detect(image)
    hits = sum(found(faces, x, y, side) for x, y, side in placed)
    assert hits / len(placed) >= GALLERY_RECALL_FLOOR[name], f"{name} found {hits} of {len(placed)}"
    assert len(faces) <= hits + 1  # at most one box on no face


def test_yunet_gives_scores_and_landmarks_in_frame_pixels(fer_faces: tuple[np.ndarray, np.ndarray]) -> None:
    image, placed = rolled_gallery(fer_faces[0])
    faces = create_detector("yunet", scale=1.75).detect(image)
    assert faces and [f.box[2] * f.box[3] for f in faces] == sorted((f.box[2] * f.box[3] for f in faces), reverse=True)
    for face in faces:
        assert 0.5 <= face.score <= 1.0
        x, y, w, h = face.box
        assert 0 <= x and x + w <= 1280 and 0 <= y and y + h <= 720
        right_eye, left_eye, nose, right_mouth, left_mouth = face.landmarks
        # Upright enough faces: eyes above the nose, the nose above the mouth, all near the box.
        assert max(right_eye[1], left_eye[1]) < nose[1] < min(right_mouth[1], left_mouth[1])
        assert right_eye[0] < left_eye[0] and right_mouth[0] < left_mouth[0]
        assert all(x - w / 4 <= px <= x + w * 1.25 and y - h / 4 <= py <= y + h * 1.25 for px, py in face.landmarks)
    # Haar has neither.
    assert all(f.score is None and f.landmarks is None for f in create_detector("haar").detect(image))


def test_eye_angle_follows_a_turned_face(fer_faces: tuple[np.ndarray, np.ndarray]) -> None:
    detector = create_detector("yunet")
    canvas = np.full((600, 600, 3), 90, np.uint8)
    face = cv2.cvtColor(cv2.resize(fer_faces[0][0], (256, 256), interpolation=cv2.INTER_CUBIC), cv2.COLOR_GRAY2BGR)
    canvas[172:428, 172:428] = face
    upright = detector.detect(canvas)[0].eye_angle_deg()
    # cv2 turns counter-clockwise on screen for a positive angle: the eye line's angle falls by it.
    turned = cv2.warpAffine(canvas, cv2.getRotationMatrix2D((300, 300), 15, 1.0), (600, 600), borderValue=(90, 90, 90))
    assert detector.detect(turned)[0].eye_angle_deg() == pytest.approx(upright - 15, abs=6)


def test_onnxruntime_and_opencv_give_the_same_faces(fer_faces: tuple[np.ndarray, np.ndarray]) -> None:
    image, _ = rolled_gallery(fer_faces[0])
    ours = create_detector("yunet", backend="onnxruntime").detect(image)
    opencv = create_detector("yunet", backend="opencv").detect(image)
    assert [f.box for f in ours] == [f.box for f in opencv]
    for a, b in zip(ours, opencv, strict=True):
        assert a.score == pytest.approx(b.score, abs=1e-3)
        np.testing.assert_allclose(a.landmarks, b.landmarks, atol=0.5)


def test_search_near_tracked_faces_finds_them_again(fer_faces: tuple[np.ndarray, np.ndarray]) -> None:
    image, _ = rolled_gallery(fer_faces[0])
    detector = create_detector("yunet", scale=1.75)
    whole = detector.detect(image)
    near = detector.detect_near(image, [f.box for f in whole])
    assert len(near) == len(whole)
    for face in whole:
        best = max(near, key=lambda n: _iou(n.box, face.box))
        assert _iou(best.box, face.box) > 0.6
    assert detector.detect_near(image, []) == []
    # Around an empty patch of background nothing is found.
    assert detector.detect_near(np.full((720, 1280, 3), 60, np.uint8), [(600, 300, 80, 80)]) == []


def _iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return ix * iy / (a[2] * a[3] + b[2] * b[3] - ix * iy)


def test_a_box_inside_a_stronger_face_box_is_dropped() -> None:
    face = Detection((100, 100, 80, 100), 0.9)
    chin = Detection((120, 160, 40, 35), 0.7)  # wholly inside the face
    neighbour = Detection((170, 100, 80, 100), 0.8)  # overlaps the face a little: another person
    assert suppress_nested([chin, neighbour, face], 0.6) == [face, neighbour]


def test_yunet_bad_options() -> None:
    with pytest.raises(DetectorError, match="scale 9"):
        YuNetDetector(scale=9)
    with pytest.raises(DetectorError, match="score_threshold 1.5"):
        YuNetDetector(score_threshold=1.5)
    with pytest.raises(DetectorError, match="backend 'tflite'"):
        YuNetDetector(backend="tflite")
    with pytest.raises(DetectorError, match="near_face_px 4 is outside 16-512"):
        YuNetDetector(near_face_px=4)


def test_onnxruntime_sessions_do_not_spin_after_a_run() -> None:
    # The detector and the classifier take turns on the same cores: a session whose threads
    # spin-wait after its run slows the next one down.
    options = cpu_session_options(threads=1)
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert options.intra_op_num_threads == 1


def test_the_shipped_yunet_file_is_the_pinned_one() -> None:
    import hashlib

    assert hashlib.sha256(yunet_model_path().read_bytes()).hexdigest() == YUNET_SHA256
    licence = yunet_model_path().with_name("LICENSE-yunet.txt")
    assert "MIT License" in licence.read_text()


@pytest.fixture
def shipped_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the resources folder whose YuNet file the test may damage; the app looks there."""
    models = tmp_path / "resources" / "models"
    models.mkdir(parents=True)
    target = models / yunet_model_path().name
    target.write_bytes(yunet_model_path().read_bytes())
    monkeypatch.setattr("fermonitor.core.detection.yunet_model_path", lambda: target)
    return target


def test_a_git_lfs_pointer_is_named(shipped_copy: Path) -> None:
    shipped_copy.write_text("version https://git-lfs.github.com/spec/v1\n"
                            f"oid sha256:{YUNET_SHA256}\nsize 229738\n")
    with pytest.raises(DetectorError) as error:
        create_detector("yunet")
    message = str(error.value)
    assert "\n" not in message and str(shipped_copy) in message and "Git LFS pointer" in message


def test_a_truncated_model_file_is_named(shipped_copy: Path) -> None:
    shipped_copy.write_bytes(shipped_copy.read_bytes()[:100_000])
    with pytest.raises(DetectorError) as error:
        create_detector("yunet")
    message = str(error.value)
    assert "\n" not in message and str(shipped_copy) in message
    assert "damaged or truncated: 100,000 bytes" in message and "expected 229,738 bytes" in message


def test_a_missing_model_file_is_named(shipped_copy: Path) -> None:
    shipped_copy.unlink()
    with pytest.raises(DetectorError, match=rf"^YuNet model file {shipped_copy} is missing$"):
        create_detector("yunet")


def test_a_user_model_that_is_not_onnx_is_named(tmp_path: Path) -> None:
    bogus = tmp_path / "yunet.onnx"
    bogus.write_bytes(b"\x00" * 64)
    with pytest.raises(DetectorError) as error:
        create_detector("yunet", model=bogus)
    assert str(error.value).startswith(f"YuNet model file {bogus} cannot be loaded (") and "\n" not in str(error.value)
