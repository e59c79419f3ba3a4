"""Face detectors behind a registry: YuNet (the default, with scores and landmarks) and Haar."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from fermonitor.core.onnx_backend import cpu_session_options
from fermonitor.core.preprocess import face_square, to_grey
from fermonitor.core.registry import Registry
from fermonitor.core.resources import cascade_path, yunet_model_path
from fermonitor.core.results import Box
from fermonitor.core.settings import AnalysisSettings

log = logging.getLogger(__name__)

DEFAULT_MAX_SIDE_PX = 640  # Haar runs on a copy whose longest side is at most this
CASCADE_WINDOW_PX = 24  # the frontal-face cascade's own window; nothing smaller is found

# The shipped YuNet file (fermonitor/resources/models/NOTICE-yunet.md): its size and sha256 are checked on load.
YUNET_SHA256 = "ebafce4e3c118d6554634be5c27ab333b4c047a9a8c3faf1d7cf93101c22f0f0"
YUNET_BYTES = 229_738
YUNET_STRIDES = (8, 16, 32)  # the network's three output levels, input pixels per cell
YUNET_DIVISOR = 32  # the network's input sides must be multiples of this; frames are zero-padded
LFS_POINTER_PREFIX = b"version https://git-lfs"
# The network's input is at most this many pixels (1280x720 at scale 1.75): a 1080p or 4K frame is
# scaled by less, so one full-frame search costs at most ~70 ms on 2 cores (benchmarks/gallery_eval.py).
YUNET_MAX_INPUT_PIXELS = 2_822_400
# Searching near tracked faces: each face's square, NEAR_CONTEXT times its side, is one cell of a
# mosaic that the network sees once, the face about NEAR_FACE_PX wide. On PublicTest galleries
# (benchmarks/near_search.py: 3,191 faces of 60-100 px, moved up to 5 px since the search that
# found them) 80 px finds all but 12 of the 3,099 faces the whole-frame search found, in 14 ms a
# 25-face gallery; 140 px all but 8 in 32 ms. A face missed near its track costs one whole-frame
# search, so the smaller mosaic wins. 1.6 leaves room for a face to move 30% of its width between
# steps; one that moves farther is lost near its track, and the whole-frame search that follows a
# miss finds it.
NEAR_CONTEXT = 1.6
NEAR_FACE_PX = 80
# Near a face tracked a moment ago the score threshold is this much lower: the prior says a face is
# there, and a face that flickers across the threshold would otherwise cost a whole-frame search.
NEAR_SCORE_SLACK = 0.1

Point = tuple[float, float]


class DetectorError(ValueError):
    """A detector that cannot be created: unknown name, bad option or missing model file."""


@dataclass(frozen=True)
class Detection:
    """One face found in an image.

    ``box`` (x, y, w, h) in the image's pixels; ``score`` the detector's confidence in 0-1, None
    when it gives none (Haar); ``landmarks`` five points in image pixels, in YuNet's order: the
    person's right eye, left eye, nose tip, right and left mouth corners (so the right eye lies on
    the image's left), None when the detector gives none.
    """

    box: Box
    score: float | None = None
    landmarks: tuple[Point, Point, Point, Point, Point] | None = None

    def eye_angle_deg(self) -> float | None:
        """The roll of the eye line in degrees (positive: clockwise on screen), None without landmarks."""
        if self.landmarks is None:
            return None
        (rx, ry), (lx, ly) = self.landmarks[0], self.landmarks[1]
        return float(np.degrees(np.arctan2(ly - ry, lx - rx)))


class FaceDetector(Protocol):
    """Finds faces in a BGR, BGRA or grey image, largest first."""

    name: str

    def detect(self, image: np.ndarray) -> list[Detection]: ...


DetectorFactory = Callable[..., FaceDetector]
# Detector factories take keyword options only.
_REGISTRY: Registry[DetectorFactory] = Registry("detector")
register_detector = _REGISTRY.register
list_detectors = _REGISTRY.names


def create_detector(name: str = "yunet", **options: Any) -> FaceDetector:
    """Build a registered detector.

    Raises
    ------
    DetectorError
        For an unknown name, an unknown option, or a missing or damaged model file.
    """
    if name not in _REGISTRY:
        raise DetectorError(f"unknown detector {name!r}; available: {', '.join(list_detectors())}")
    try:
        return _REGISTRY[name](**options)
    except TypeError as exc:
        raise DetectorError(f"detector {name!r}: bad options {sorted(options)} ({exc})") from exc


def downscale(grey: np.ndarray, max_side_px: int) -> tuple[np.ndarray, float]:
    """Shrink ``grey`` so its longest side is at most ``max_side_px``; returns it and the scale used."""
    height, width = grey.shape[:2]
    scale = min(1.0, max_side_px / max(height, width))
    if scale >= 1.0:
        return grey, 1.0
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(grey, size, interpolation=cv2.INTER_AREA), scale


def clip_box(x0: float, y0: float, x1: float, y1: float, width: int, height: int) -> Box | None:
    """Round a corner-form box to whole pixels inside a ``width`` x ``height`` image; None if empty."""
    ix0, iy0 = max(0, round(x0)), max(0, round(y0))
    ix1, iy1 = min(width, round(x1)), min(height, round(y1))
    if ix1 - ix0 < 1 or iy1 - iy0 < 1:
        return None
    return (ix0, iy0, ix1 - ix0, iy1 - iy0)


def inside_fraction(inner: Box, outer: Box) -> float:
    """The share of ``inner``'s area that lies inside ``outer``."""
    iw = max(0, min(inner[0] + inner[2], outer[0] + outer[2]) - max(inner[0], outer[0]))
    ih = max(0, min(inner[1] + inner[3], outer[1] + outer[3]) - max(inner[1], outer[1]))
    area = inner[2] * inner[3]
    return iw * ih / area if area > 0 else 0.0


class HaarDetector:
    """OpenCV's Viola-Jones frontal-face cascade run on a downscaled grey copy (no score, no landmarks).

    Parameters
    ----------
    max_side_px
        Longest side of the copy the cascade sees; boxes are mapped back to source pixels.
    scale_factor
        Step between the cascade's search scales (smaller: slower, finds more). On 80 FER+
        PublicTest faces upscaled to 128 px on a plain canvas, 1.05 found 81% and 1.1 found 71%
        (min_neighbors 5).
    min_neighbors
        Overlapping hits needed to keep a box (larger: fewer false positives).
    min_face_px
        Smallest face searched for, in source pixels.
    cascade
        The cascade file; default OpenCV's ``haarcascade_frontalface_default.xml``.
    equalize
        Histogram-equalise the copy first; off by default, as it lowered recall on the same faces
        from 81% to 56%.
    """

    name = "haar"

    def __init__(self, max_side_px: int = DEFAULT_MAX_SIDE_PX, scale_factor: float = 1.05,
                 min_neighbors: int = 5, min_face_px: int = 24, cascade: str | Path | None = None,
                 equalize: bool = False) -> None:
        if max_side_px < 48:
            raise DetectorError(f"haar detector: max_side_px {max_side_px} is below 48")
        if scale_factor <= 1.0:
            raise DetectorError(f"haar detector: scale_factor {scale_factor} must be above 1")
        if min_neighbors < 0 or min_face_px < 1:
            raise DetectorError(f"haar detector: min_neighbors {min_neighbors} and min_face_px {min_face_px} "
                                "must be positive")
        path = Path(cascade) if cascade is not None else cascade_path()
        if not path.is_file():
            raise DetectorError(f"Haar cascade file {path} is missing")
        try:
            self._cascade = cv2.CascadeClassifier(str(path))
        except (cv2.error, SystemError) as exc:  # OpenCV reports a malformed file as an exception
            raise DetectorError(f"Haar cascade file {path} cannot be loaded ({str(exc).strip().splitlines()[-1]})") from exc
        if self._cascade.empty():
            raise DetectorError(f"Haar cascade file {path} cannot be loaded")
        self.max_side_px = max_side_px
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_face_px = min_face_px
        self.equalize = equalize

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in ``image``, boxes in its own pixels, largest first."""
        small, scale = downscale(to_grey(image), self.max_side_px)
        if self.equalize:
            small = cv2.equalizeHist(small)
        min_side = max(CASCADE_WINDOW_PX, round(self.min_face_px * scale))
        found = self._cascade.detectMultiScale(
            small, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, minSize=(min_side, min_side)
        )
        height, width = image.shape[:2]
        faces = []
        for x, y, w, h in np.asarray(found).reshape(-1, 4):
            box = clip_box(x / scale, y / scale, (x + w) / scale, (y + h) / scale, width, height)
            if box is not None:
                faces.append(Detection(box))
        faces.sort(key=lambda d: d.box[2] * d.box[3], reverse=True)
        return faces


def read_verified_model(path: Path, sha256: str | None, size: int | None = None, what: str = "model") -> bytes:
    """The bytes of a model file, checked against its expected sha256 when one is given.

    Raises
    ------
    DetectorError
        One line naming the file: missing, unreadable, a Git LFS pointer, or not the expected bytes.
    """
    if not path.is_file():
        raise DetectorError(f"{what} file {path} is missing")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DetectorError(f"{what} file {path} cannot be read ({exc.strerror or exc})") from exc
    if data.startswith(LFS_POINTER_PREFIX):
        raise DetectorError(f"{what} file {path} is a Git LFS pointer ({len(data)} bytes), not the model: "
                            "fetch the real file (git lfs pull) or reinstall fermonitor")
    if sha256 is not None:
        digest = hashlib.sha256(data).hexdigest()
        if digest != sha256:
            expected = f"{size:,} bytes" if size is not None else "another file"
            raise DetectorError(f"{what} file {path} is damaged or truncated: {len(data):,} bytes with sha256 "
                                f"{digest[:16]}..., expected {expected} with sha256 {sha256[:16]}...")
    return data


class YuNetDetector:
    """The YuNet CNN face detector (OpenCV Zoo, 2026may export): boxes, scores and five landmarks.

    The network runs on onnxruntime (3-4x faster than OpenCV's DNN module on the same file, with the
    same boxes) or, with ``backend="opencv"``, through ``cv2.FaceDetectorYN``.

    Parameters
    ----------
    scale
        The frame is resized by this factor before the network sees it. Above 1 finds smaller and
        softer faces (a call gallery) at the cost of time growing with the pixel count; below 1 is
        for large faces only. Boxes come back in the frame's pixels.
    score_threshold
        Lowest confidence kept (YuNet's score, the geometric mean of its class and objectness).
    nms_threshold
        IoU above which the weaker of two boxes is dropped.
    max_inside
        A box that lies this much (share of its area) inside a stronger box is dropped: the chin,
        mouth or eye boxes that IoU-based suppression keeps beside a face.
    model
        The ONNX file; default the shipped one, whose sha256 is checked. Another file is loaded as is.
    backend
        ``"onnxruntime"`` or ``"opencv"``.
    threads
        onnxruntime's intra-op threads (0: its default, one per core).
    near_face_px
        The side faces are resized to in :meth:`detect_near`'s mosaic.
    """

    name = "yunet"

    def __init__(self, scale: float = 1.0, score_threshold: float = 0.6, nms_threshold: float = 0.3,
                 max_inside: float = 0.6, model: str | Path | None = None, backend: str = "onnxruntime",
                 threads: int = 0, near_face_px: int = NEAR_FACE_PX) -> None:
        if not (0.1 <= scale <= 4.0):
            raise DetectorError(f"yunet detector: scale {scale} is outside 0.1-4")
        if not (0.0 < score_threshold < 1.0) or not (0.0 < nms_threshold <= 1.0) or not (0.0 < max_inside <= 1.0):
            raise DetectorError(f"yunet detector: score_threshold {score_threshold}, nms_threshold {nms_threshold} "
                                f"and max_inside {max_inside} must lie in (0, 1)")
        if backend not in ("onnxruntime", "opencv"):
            raise DetectorError(f"yunet detector: backend {backend!r} is not onnxruntime or opencv")
        path = Path(model) if model is not None else yunet_model_path()
        shipped = model is None
        data = read_verified_model(path, YUNET_SHA256 if shipped else None, YUNET_BYTES, what="YuNet model")
        if not (16 <= near_face_px <= 512):
            raise DetectorError(f"yunet detector: near_face_px {near_face_px} is outside 16-512")
        self.scale = scale
        self.near_face_px = near_face_px
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        self.max_inside = max_inside
        self.backend = backend
        self.path = path
        self._run: Callable[[np.ndarray, float], np.ndarray]
        try:
            if backend == "onnxruntime":
                self._run = _onnx_yunet(data, threads, nms_threshold)
            else:
                self._run = _opencv_yunet(data, nms_threshold)
        except Exception as exc:  # onnxruntime and OpenCV raise their own types for a bad graph
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DetectorError(f"YuNet model file {path} cannot be loaded ({first})") from exc

    def input_scale(self, width: int, height: int) -> float:
        """The factor a ``width`` x ``height`` frame is resized by: ``scale``, capped in pixels."""
        return min(self.scale, (YUNET_MAX_INPUT_PIXELS / max(1, width * height)) ** 0.5)

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in the whole of ``image``, boxes and landmarks in its own pixels, largest first."""
        height, width = image.shape[:2]
        bgr = _to_bgr(image)
        scale = self.input_scale(width, height)
        if scale != 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_LINEAR if scale > 1 else cv2.INTER_AREA)
        sx, sy = bgr.shape[1] / width, bgr.shape[0] / height
        mapping = np.array([[1 / sx, 0.0, 0.0], [0.0, 1 / sy, 0.0]])
        return self._finish(_map_rows(self._run(bgr, self.score_threshold), mapping), width, height)

    def detect_near(self, image: np.ndarray, boxes: Sequence[Box]) -> list[Detection]:
        """Faces near ``boxes`` only (the people already tracked), boxes and landmarks in ``image`` pixels.

        Each box's surroundings (``NEAR_CONTEXT`` times its face square) become one cell of a
        mosaic, the face resized to about ``near_face_px``, and the network runs once on the
        mosaic: for a few faces a fraction of a whole-frame search. The network's score depends on a
        face's size, so the boxes missed at that size are tried once more at the whole-frame
        search's scale, where they were found.
        """
        if not boxes:
            return []
        height, width = image.shape[:2]
        bgr = _to_bgr(image)
        sides = [face_square(box)[2] for box in boxes]
        found = self._near_pass(bgr, boxes, [self.near_face_px / side for side in sides])
        missed = [k for k in range(len(boxes)) if k not in found]
        if missed:
            zoom = self.input_scale(width, height)
            again = self._near_pass(bgr, [boxes[k] for k in missed], [zoom] * len(missed))
            found.update({missed[k]: row for k, row in again.items()})
        return self._finish(np.array(list(found.values())).reshape(-1, 15), width, height)

    def _near_pass(self, bgr: np.ndarray, boxes: Sequence[Box], zooms: Sequence[float]) -> dict[int, np.ndarray]:
        """One mosaic of the boxes' surroundings, each resized by its zoom: box index -> face row in frame pixels."""
        cell = int(np.ceil(max(face_square(b)[2] * z for b, z in zip(boxes, zooms, strict=True)) * NEAR_CONTEXT / 32)) * 32
        columns = int(np.ceil(np.sqrt(len(boxes))))
        mosaic = np.zeros((-(-len(boxes) // columns) * cell, columns * cell, 3), np.uint8)
        to_frame = []
        for k, (box, zoom) in enumerate(zip(boxes, zooms, strict=True)):
            cx, cy, _ = face_square(box)
            ox, oy = (k % columns) * cell, (k // columns) * cell
            into_cell = np.array([[zoom, 0.0, cell / 2 - cx * zoom], [0.0, zoom, cell / 2 - cy * zoom]])
            mosaic[oy:oy + cell, ox:ox + cell] = cv2.warpAffine(
                bgr, into_cell, (cell, cell), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
            # mosaic pixels -> frame pixels
            to_frame.append(np.array([[1 / zoom, 0.0, cx - (cell / 2 + ox) / zoom],
                                      [0.0, 1 / zoom, cy - (cell / 2 + oy) / zoom]]))
        best: dict[int, tuple[float, np.ndarray]] = {}
        for row in self._run(mosaic, max(0.05, self.score_threshold - NEAR_SCORE_SLACK)):
            mx, my = row[0] + row[2] / 2, row[1] + row[3] / 2
            column, line = int(mx // cell), int(my // cell)
            k = line * columns + column
            if not (0 <= column < columns and k < len(boxes)):
                continue
            off_centre = float(np.hypot(mx - (column + 0.5) * cell, my - (line + 0.5) * cell))
            if off_centre < cell / 4 and (k not in best or off_centre < best[k][0]):
                best[k] = (off_centre, _map_rows(row[None], to_frame[k])[0])
        return {k: row for k, (_, row) in best.items()}

    def _finish(self, rows: np.ndarray, width: int, height: int) -> list[Detection]:
        """Rows in frame pixels -> detections clipped to the frame, nested boxes dropped, largest first."""
        faces = []
        for row in rows:
            x, y, w, h = row[:4]
            box = clip_box(x, y, x + w, y + h, width, height)
            if box is None:
                continue
            points = tuple((float(row[4 + 2 * k]), float(row[5 + 2 * k])) for k in range(5))
            faces.append(Detection(box, float(row[14]), points))  # type: ignore[arg-type]
        faces = suppress_nested(faces, self.max_inside)
        faces.sort(key=lambda d: d.box[2] * d.box[3], reverse=True)
        return faces


def _map_rows(rows: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Face rows (x, y, w, h, 5 points, score) through an axis-aligned 2x3 affine map."""
    out = np.array(rows, dtype=np.float64).reshape(-1, 15)
    (ax, _, bx), (_, ay, by) = affine
    out[:, 0] = out[:, 0] * ax + bx
    out[:, 1] = out[:, 1] * ay + by
    out[:, 2] *= ax
    out[:, 3] *= ay
    out[:, 4:14:2] = out[:, 4:14:2] * ax + bx
    out[:, 5:14:2] = out[:, 5:14:2] * ay + by
    return out


def suppress_nested(faces: Sequence[Detection], max_inside: float, max_iou: float = 0.5) -> list[Detection]:
    """Drop each detection lying ``max_inside`` inside, or overlapping at ``max_iou``, a higher-scoring one."""
    kept: list[Detection] = []
    for face in sorted(faces, key=lambda d: -(d.score or 0.0)):
        if all(inside_fraction(face.box, other.box) < max_inside and box_iou(face.box, other.box) < max_iou
               for other in kept):
            kept.append(face)
    return kept


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    overlap = inside_fraction(a, b) * a[2] * a[3]
    union = a[2] * a[3] + b[2] * b[3] - overlap
    return overlap / union if union > 0 else 0.0


def detector_from_settings(analysis: AnalysisSettings) -> FaceDetector:
    """The detector ``analysis.detector`` names, with the options of ``analysis`` that apply to it."""
    options: dict[str, Any] = {}
    if analysis.detector == "haar":
        options = {"max_side_px": analysis.detector_max_side_px}
    elif analysis.detector == "yunet":
        options = {"scale": analysis.detector_scale, "score_threshold": analysis.detector_score}
    return create_detector(analysis.detector, **options)


def _to_bgr(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    raise ValueError(f"image of shape {image.shape} is neither grey, BGR nor BGRA")


def _onnx_yunet(data: bytes, threads: int, nms_threshold: float) -> Callable[[np.ndarray, float], np.ndarray]:
    """YuNet on onnxruntime with OpenCV's decoding: rows of x, y, w, h, 5 landmarks (x, y), score."""
    import onnxruntime as ort

    session = ort.InferenceSession(data, cpu_session_options(threads), providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    # Input buffers by image size, their padding zero: a new 2240x1280 float blob each call costs
    # more in page faults than filling one (the whole-frame search and the mosaics take turns).
    blobs: dict[tuple[int, int], np.ndarray] = {}

    def run(bgr: np.ndarray, score_threshold: float) -> np.ndarray:
        height, width = bgr.shape[:2]
        pad_h = -(-height // YUNET_DIVISOR) * YUNET_DIVISOR
        pad_w = -(-width // YUNET_DIVISOR) * YUNET_DIVISOR
        blob = blobs.get((height, width))
        if blob is None:
            if len(blobs) >= 4:
                blobs.clear()
            blob = blobs[(height, width)] = np.zeros((1, 3, pad_h, pad_w), np.float32)
        blob[0, :, :height, :width] = bgr.transpose(2, 0, 1)
        outputs = dict(zip((o.name for o in session.get_outputs()), session.run(None, {input_name: blob}), strict=True))
        return decode_yunet(outputs, pad_w, pad_h, score_threshold, nms_threshold)

    return run


def decode_yunet(outputs: dict[str, np.ndarray], pad_w: int, pad_h: int, score_threshold: float,
                 nms_threshold: float) -> np.ndarray:
    """Turn YuNet's per-level outputs into face rows as ``cv2.FaceDetectorYN.detect`` returns them."""
    found = []
    for stride in YUNET_STRIDES:
        cols = pad_w // stride
        cls = np.clip(outputs[f"cls_{stride}"].reshape(-1), 0.0, 1.0)
        obj = np.clip(outputs[f"obj_{stride}"].reshape(-1), 0.0, 1.0)
        score = np.sqrt(cls * obj)
        keep = np.flatnonzero(score >= score_threshold)
        if keep.size == 0:
            continue
        bbox = outputs[f"bbox_{stride}"].reshape(-1, 4)[keep]
        kps = outputs[f"kps_{stride}"].reshape(-1, 10)[keep]
        col = (keep % cols).astype(np.float32)[:, None]
        row = (keep // cols).astype(np.float32)[:, None]
        centre_x = (col[:, 0] + bbox[:, 0]) * stride
        centre_y = (row[:, 0] + bbox[:, 1]) * stride
        w = np.exp(bbox[:, 2]) * stride
        h = np.exp(bbox[:, 3]) * stride
        points = np.empty_like(kps)
        points[:, 0::2] = (kps[:, 0::2] + col) * stride
        points[:, 1::2] = (kps[:, 1::2] + row) * stride
        found.append(np.column_stack([centre_x - w / 2, centre_y - h / 2, w, h, points, score[keep]]))
    if not found:
        return np.zeros((0, 15), np.float32)
    faces = np.concatenate(found).astype(np.float32)
    keep = cv2.dnn.NMSBoxes(faces[:, :4].tolist(), faces[:, 14].tolist(), score_threshold, nms_threshold)
    return faces[np.asarray(keep, dtype=np.int64).reshape(-1)]


def _opencv_yunet(data: bytes, nms_threshold: float) -> Callable[[np.ndarray, float], np.ndarray]:
    """YuNet through ``cv2.FaceDetectorYN`` (OpenCV's DNN module)."""
    detector = cv2.FaceDetectorYN.create("onnx", np.frombuffer(data, np.uint8), np.zeros(0, np.uint8),
                                         (320, 320), 0.5, nms_threshold, 5000)

    def run(bgr: np.ndarray, score_threshold: float) -> np.ndarray:
        detector.setScoreThreshold(score_threshold)
        detector.setInputSize((bgr.shape[1], bgr.shape[0]))
        _, faces = detector.detect(bgr)
        return np.zeros((0, 15), np.float32) if faces is None else faces

    return run


@register_detector("haar")
def _haar(**options: Any) -> FaceDetector:
    return HaarDetector(**options)


@register_detector("yunet")
def _yunet(**options: Any) -> FaceDetector:
    return YuNetDetector(**options)
