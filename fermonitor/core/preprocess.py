"""The one face preprocessing step shared by training and inference."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

FACE_SIZE_PX = 48


def to_grey(image: np.ndarray) -> np.ndarray:
    """Return a uint8 single-channel copy of a grey, BGR or BGRA image."""
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
    raise ValueError(f"image of shape {image.shape} is neither grey, BGR nor BGRA")


def preprocess_face(
    image: np.ndarray,
    box: Sequence[int] | None = None,
    margin: float = 0.0,
    size: int = FACE_SIZE_PX,
) -> np.ndarray:
    """Crop a face with a margin, convert it to grey and resize it to ``size`` x ``size``.

    Parameters
    ----------
    image
        A grey (H, W), BGR (H, W, 3) or BGRA (H, W, 4) uint8 image.
    box
        ``(x, y, w, h)`` of the face in ``image`` pixels; ``None`` takes the whole image
        (the FER+ training images are already face crops).
    margin
        Extra border on every side, as a fraction of the box's width and height. Parts outside
        the image are filled by replicating the edge, so faces at the border keep their shape.
    size
        Output side in pixels.

    Returns
    -------
    np.ndarray
        uint8 array of shape (size, size).
    """
    grey = to_grey(image)
    if box is None:
        crop = grey
    else:
        x, y, w, h = (int(v) for v in box)
        if w <= 0 or h <= 0:
            raise ValueError(f"face box {tuple(box)} has no area")
        dx, dy = int(round(w * margin)), int(round(h * margin))
        x0, y0, x1, y1 = x - dx, y - dy, x + w + dx, y + h + dy
        height, width = grey.shape
        pad = max(0, -x0, -y0, x1 - width, y1 - height)
        if pad:
            grey = cv2.copyMakeBorder(grey, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
            x0, y0, x1, y1 = x0 + pad, y0 + pad, x1 + pad, y1 + pad
        crop = grey[y0:y1, x0:x1]
    if crop.shape != (size, size):
        shrinking = crop.shape[0] > size
        crop = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    return np.ascontiguousarray(crop, dtype=np.uint8)


def normalise_faces(faces: np.ndarray, mean: float, std: float) -> np.ndarray:
    """Turn uint8 faces (N, H, W) into float32 network input (N, 1, H, W) with the model's mean/std."""
    if faces.ndim != 3 or faces.dtype != np.uint8:
        raise ValueError(f"faces must be a uint8 array (N, H, W), got {faces.dtype} {faces.shape}")
    scaled = faces.astype(np.float32) / 255.0
    return ((scaled - mean) / std)[:, None, :, :]


def face_square(box: Sequence[int], margin: float = 0.0) -> tuple[float, float, float]:
    """The square a face is cropped to: centre x, centre y and side, in image pixels.

    Centred on ``box``; its side is the box's longer side plus ``margin`` of it on every side, so
    a tall detector box (YuNet's run brow to chin) and a square one (Haar's) frame a face alike.
    """
    x, y, w, h = (int(v) for v in box)
    if w <= 0 or h <= 0:
        raise ValueError(f"face box {tuple(box)} has no area")
    return x + w / 2, y + h / 2, max(w, h) * (1.0 + 2.0 * margin)


def crop_face(image: np.ndarray, box: Sequence[int], margin: float = 0.0, roll_deg: float = 0.0,
              size: int = FACE_SIZE_PX) -> np.ndarray:
    """The face in ``box`` as the model's uint8 (size, size) input, optionally rolled upright.

    Parameters
    ----------
    image
        A grey, BGR or BGRA uint8 frame.
    box
        ``(x, y, w, h)`` of the face in ``image`` pixels.
    margin
        Border around the box's longer side, as a fraction of it (see :func:`face_square`).
    roll_deg
        The face's roll (its eye line's angle, positive clockwise on screen); the square is turned
        by it about its centre so the eyes come out level. 0 takes the square as it is.
    size
        Output side in pixels.
    """
    cx, cy, side = face_square(box, margin)
    if roll_deg == 0.0:
        square = (round(cx - side / 2), round(cy - side / 2), round(side), round(side))
        return preprocess_face(image, square, 0.0, size)
    # Sample the turned square at the frame's own resolution, then shrink it like any other crop.
    grey = to_grey(image)
    out = max(size, int(round(side)))
    rotation = cv2.getRotationMatrix2D((cx, cy), roll_deg, out / side)
    rotation[:, 2] += (out / 2 - cx, out / 2 - cy)
    patch = cv2.warpAffine(grey, rotation, (out, out), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return preprocess_face(patch, None, 0.0, size)
