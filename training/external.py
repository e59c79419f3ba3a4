"""External evaluation sets: a folder per class of face images (CK+48, or any other), read as faces.

Used only to evaluate and select models, never to train. Folder names map to the FER+ classes
(``FOLDER_CLASSES``: "happy" is happiness, "sad" sadness, ...); other folders are reported and
left out. Each image is the face as it is (cropped to its centre square, grey, 48x48), or with
``detect`` the largest face the app's detector finds in it, cropped and levelled as the app does.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from fermonitor.core.checkpoint import FERPLUS_CLASSES
from fermonitor.core.preprocess import crop_face, preprocess_face

log = logging.getLogger(__name__)

FOLDER_CLASSES = {
    "neutral": "neutral", "happiness": "happiness", "happy": "happiness", "surprise": "surprise",
    "surprised": "surprise", "sadness": "sadness", "sad": "sadness", "anger": "anger", "angry": "anger",
    "disgust": "disgust", "disgusted": "disgust", "fear": "fear", "fearful": "fear", "afraid": "fear",
    "contempt": "contempt",
}
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm"})


@dataclass(frozen=True)
class ExternalSet:
    """Faces of an external set with labels in FER+ class order, and what was left out."""

    images: np.ndarray  # uint8 (N, 48, 48)
    labels: np.ndarray  # int64 (N,), indices into FERPLUS_CLASSES
    unknown_folders: list[str]  # folder names that map to no FER+ class
    unreadable: list[str]  # files that are not images that OpenCV reads
    no_face: list[str]  # images in which the detector found no face (with detect)


def read_external(folder: str | Path, detect: bool = False, size: int = 48) -> ExternalSet:
    """Read a folder-per-class set.

    Raises
    ------
    ValueError
        When ``folder`` is not a folder, or holds no image in a folder named after a FER+ class.
    """
    root = Path(folder)
    if not root.is_dir():
        raise ValueError(f"external set {root} is not a folder")
    detector = None
    if detect:
        from fermonitor.core.detection import create_detector

        detector = create_detector("yunet")
    images, labels, unknown, unreadable, no_face = [], [], [], [], []
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        name = FOLDER_CLASSES.get(sub.name.lower())
        if name is None:
            unknown.append(sub.name)
            continue
        for path in sorted(p for p in sub.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                unreadable.append(str(path.relative_to(root)))
                continue
            if detector is None:
                height, width = image.shape[:2]
                side = min(width, height)
                face = preprocess_face(image, ((width - side) // 2, (height - side) // 2, side, side), size=size)
            else:
                found = detector.detect(image)
                if not found:
                    no_face.append(str(path.relative_to(root)))
                    continue
                face = crop_face(image, found[0].box, roll_deg=found[0].eye_angle_deg() or 0.0, size=size)
            images.append(face)
            labels.append(FERPLUS_CLASSES.index(name))
    if not images:
        raise ValueError(f"external set {root} holds no readable image in a folder named after a FER+ class "
                         f"({', '.join(sorted(FOLDER_CLASSES))})" + (f"; unknown folders: {', '.join(unknown)}" if unknown else ""))
    for what, items in (("folders that name no FER+ class", unknown), ("unreadable files", unreadable),
                        ("images without a face found", no_face)):
        if items:
            log.warning("external set %s: %d %s left out: %s", root, len(items), what, ", ".join(items[:10]))
    return ExternalSet(np.stack(images), np.array(labels, np.int64), unknown, unreadable, no_face)
