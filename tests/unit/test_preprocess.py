"""preprocess_face and normalise_faces: the one preprocessing path of training and inference."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from fermonitor.core.preprocess import (
    FACE_SIZE_PX,
    crop_face,
    face_square,
    normalise_faces,
    preprocess_face,
    to_grey,
)


def _gradient_image(height: int = 120, width: int = 160) -> np.ndarray:
    """A BGR image whose every pixel is distinct enough to catch an off-by-one crop."""
    y, x = np.mgrid[0:height, 0:width]
    blue = (x * 255 // width).astype(np.uint8)
    green = (y * 255 // height).astype(np.uint8)
    red = ((x + y) % 256).astype(np.uint8)
    return np.dstack([blue, green, red])


def test_a_48px_grey_face_passes_unchanged() -> None:
    face = np.random.default_rng(0).integers(0, 256, (48, 48), dtype=np.uint8)
    out = preprocess_face(face)
    assert out.dtype == np.uint8 and out.shape == (48, 48)
    np.testing.assert_array_equal(out, face)


@pytest.mark.parametrize("channels", [3, 4])
def test_colour_images_become_grey(channels: int) -> None:
    image = _gradient_image()
    if channels == 4:
        image = np.dstack([image, np.full(image.shape[:2], 255, np.uint8)])
    expected = cv2.resize(cv2.cvtColor(image[:, :, :3], cv2.COLOR_BGR2GRAY), (48, 48), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(preprocess_face(image), expected)


def test_a_box_without_margin_crops_exactly_that_box() -> None:
    image = _gradient_image()
    box = (30, 20, 48, 48)
    np.testing.assert_array_equal(preprocess_face(image, box), to_grey(image)[20:68, 30:78])


def test_a_margin_widens_the_crop_on_every_side() -> None:
    image = _gradient_image()
    grey = to_grey(image)
    out = preprocess_face(image, (40, 30, 40, 40), margin=0.25)
    expected = cv2.resize(grey[20:80, 30:90], (48, 48), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(out, expected)


def test_small_faces_are_upscaled_to_the_model_size() -> None:
    grey = to_grey(_gradient_image())
    out = preprocess_face(grey, (10, 10, 24, 24), size=FACE_SIZE_PX)
    expected = cv2.resize(grey[10:34, 10:34], (48, 48), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(out, expected)


def test_a_face_at_the_border_is_padded_by_replicating_the_edge() -> None:
    grey = np.zeros((100, 100), np.uint8)
    grey[:, :50] = 200  # left half bright: replicated padding on the left stays bright
    out = preprocess_face(grey, (0, 30, 48, 48), margin=0.5)
    assert out.shape == (48, 48)
    # The crop spans x = -24..72: its left third is padding copied from the bright edge column.
    assert np.all(out[:, :12] == 200)
    assert np.all(out[:, -8:] == 0)


def test_a_box_entirely_outside_is_still_a_crop_of_the_edge() -> None:
    grey = np.full((50, 50), 7, np.uint8)
    assert np.all(preprocess_face(grey, (60, 60, 10, 10)) == 7)


@pytest.mark.parametrize("box", [(10, 10, 0, 20), (10, 10, 20, -1)])
def test_a_box_without_area_is_an_error(box: tuple[int, int, int, int]) -> None:
    with pytest.raises(ValueError, match=r"face box .* has no area"):
        preprocess_face(_gradient_image(), box)


def test_an_image_with_two_channels_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"image of shape \(20, 20, 2\) is neither grey, BGR nor BGRA"):
        preprocess_face(np.zeros((20, 20, 2), np.uint8))


def test_normalise_faces_scales_with_mean_and_std() -> None:
    faces = np.array([[[0, 255], [51, 102]]], dtype=np.uint8)
    out = normalise_faces(faces, mean=0.5, std=0.25)
    assert out.shape == (1, 1, 2, 2) and out.dtype == np.float32
    np.testing.assert_allclose(out[0, 0], [[-2.0, 2.0], [-1.2, -0.4]], atol=1e-6)


@pytest.mark.parametrize("faces", [np.zeros((48, 48), np.uint8), np.zeros((1, 48, 48), np.float32)])
def test_normalise_faces_rejects_bad_input(faces: np.ndarray) -> None:
    with pytest.raises(ValueError, match=r"faces must be a uint8 array \(N, H, W\)"):
        normalise_faces(faces, 0.5, 0.25)


def test_a_tall_box_is_cropped_as_the_square_around_it() -> None:
    image = _gradient_image(200, 200)
    assert face_square((50, 40, 60, 100)) == (80.0, 90.0, 100.0)
    assert face_square((50, 40, 60, 100), margin=0.1) == (80.0, 90.0, 120.0)
    np.testing.assert_array_equal(crop_face(image, (50, 40, 60, 100)), preprocess_face(image, (30, 40, 100, 100)))


def test_a_rolled_face_comes_out_level(fer_faces: tuple[np.ndarray, np.ndarray]) -> None:
    """A real face turned by 15 degrees and turned back by crop_face matches the upright crop."""
    face = cv2.resize(fer_faces[0][3], (96, 96), interpolation=cv2.INTER_CUBIC)
    canvas = np.full((200, 200), 128, np.uint8)
    canvas[52:148, 52:148] = face
    box = (52, 52, 96, 96)
    upright = crop_face(canvas, box).astype(np.float32)
    # cv2 turns a positive angle counter-clockwise on screen: the eye line then slopes by -15 degrees.
    turned = cv2.warpAffine(canvas, cv2.getRotationMatrix2D((100, 100), 15, 1.0), (200, 200), borderValue=128)
    levelled = crop_face(turned, box, roll_deg=-15.0).astype(np.float32)
    unlevelled = crop_face(turned, box).astype(np.float32)
    inner = slice(8, 40)  # the corners hold the canvas that the turn brought in
    error_levelled = np.abs(levelled - upright)[inner, inner].mean()
    error_unlevelled = np.abs(unlevelled - upright)[inner, inner].mean()
    assert error_levelled < 6 and error_levelled < error_unlevelled / 3
