"""The training engine's parts on their own: metrics, online augmentation, the study's offline
tripling and flip test-time augmentation, checked against what each is said to do."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from training.data import DataPaths, FaceSplit, load_splits
from training.engine import (
    augment,
    classification_metrics,
    draw_labels,
    mix,
    predict_logits,
    to_input,
)
from training.train import offline_triple

MEAN, STD = 0.5, 0.25  # any normalisation: the checks below compare in normalised space


def _real_faces(small_data: Path, count: int = 32) -> FaceSplit:
    return load_splits(DataPaths.in_folder(small_data))["train"].subset(np.arange(count))


def _dot_batch(n: int, y: int, x: int) -> torch.Tensor:
    """n copies of a dark 48x48 image holding one bright 3x3 dot centred on pixel (y, x)."""
    image = np.zeros((48, 48), dtype=np.uint8)
    image[y - 1 : y + 2, x - 1 : x + 2] = 255
    return to_input(np.repeat(image[None], n, axis=0), 0.0, 1.0, torch.device("cpu"))


def _centroids(x: torch.Tensor) -> np.ndarray:
    """(y, x) pixel centre of mass of each image of a batch (N, 1, H, W)."""
    weights = x[:, 0].clamp(min=0).double()
    ys, xs = torch.meshgrid(torch.arange(48.0, dtype=torch.float64), torch.arange(48.0, dtype=torch.float64),
                            indexing="ij")
    total = weights.sum(dim=(1, 2))
    return torch.stack([(weights * ys).sum(dim=(1, 2)) / total, (weights * xs).sum(dim=(1, 2)) / total], 1).numpy()


def test_metrics_on_hand_counted_predictions() -> None:
    # true:      0 0 0 1 1 2    class 3 never occurs and is left out of the macro mean
    # predicted: 0 0 1 1 3 1
    metrics = classification_metrics(np.array([0, 0, 0, 1, 1, 2]), np.array([0, 0, 1, 1, 3, 1]), num_classes=4)
    assert metrics["accuracy"] == pytest.approx(3 / 6)
    assert metrics["recall"] == pytest.approx([2 / 3, 1 / 2, 0.0, 0.0])
    # F1: class 0 precision 1, recall 2/3 -> 0.8; class 1 precision 1/3, recall 1/2 -> 0.4; class 2 -> 0.
    assert metrics["macro_f1"] == pytest.approx((0.8 + 0.4 + 0.0) / 3)
    assert metrics["confusion"] == [[2, 1, 0, 0], [0, 1, 0, 1], [0, 1, 0, 0], [0, 0, 0, 0]]


def test_label_drawing_follows_each_faces_distribution() -> None:
    shares = np.array([[0.5, 0.3, 0.2, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0.25, 0.75]], dtype=np.float32)
    targets = np.repeat(shares, 20_000, axis=0)
    drawn = draw_labels(targets, np.random.default_rng(0))
    assert drawn.dtype == np.float32 and np.array_equal(drawn.sum(axis=1), np.ones(len(targets)))
    for row, share in enumerate(shares):
        frequency = drawn[row * 20_000 : (row + 1) * 20_000].mean(axis=0)
        np.testing.assert_allclose(frequency, share, atol=0.015)
        assert not frequency[share == 0].any()  # a class nobody voted for is never drawn
    one_hot = np.eye(8, dtype=np.float32)[[3, 7, 0]]
    assert np.array_equal(draw_labels(one_hot, np.random.default_rng(1)), one_hot)


def test_flip_mirrors_about_half_of_the_faces_and_leaves_the_rest(small_data: Path) -> None:
    x = to_input(_real_faces(small_data).images, MEAN, STD, torch.device("cpu"))
    out = augment(x, {"flip"}, torch.Generator().manual_seed(0))
    same = [torch.allclose(o, i, atol=1e-5) for o, i in zip(out, x, strict=True)]
    mirrored = [torch.allclose(o, torch.flip(i, dims=[2]), atol=1e-5) for o, i in zip(out, x, strict=True)]
    assert all(s or m for s, m in zip(same, mirrored, strict=True))
    assert 8 <= sum(mirrored) <= 24, sum(mirrored)


def test_rotate_turns_a_face_by_at_most_ten_degrees_about_its_centre() -> None:
    x = _dot_batch(64, 24, 40)  # about 16.5 px right of the image centre (23.5, 23.5)
    out = augment(x, {"rotate"}, torch.Generator().manual_seed(0))
    (y0, x0), = _centroids(x[:1]) - [23.5, 23.5]
    dy, dx = (_centroids(out) - [23.5, 23.5]).T
    np.testing.assert_allclose(np.hypot(dy, dx), np.hypot(y0, x0), atol=0.3)  # same distance from the centre
    angles = np.degrees(np.arctan2(dy, dx) - np.arctan2(y0, x0))
    assert np.abs(angles).max() <= 10.5
    assert np.abs(angles).max() > 5  # they do turn, both ways
    assert angles.min() < 0 < angles.max()


def test_crop_moves_the_centre_at_most_four_pixels_and_scales_by_at_most_ten_percent() -> None:
    x = _dot_batch(64, 23, 23)
    out = augment(x, {"crop"}, torch.Generator().manual_seed(0))
    shift = np.hypot(*(_centroids(out) - _centroids(x)).T)
    assert shift.max() <= 4 * math.sqrt(2) / 0.9 + 0.2
    assert shift.max() > 2
    # A dot off the centre shows the scale: its distance from the centre changes by at most 10%,
    # once the shift of the centre is taken out.
    far = _dot_batch(64, 23, 40)
    out_far = augment(far, {"crop"}, torch.Generator().manual_seed(0))
    ratio = np.hypot(*(_centroids(out_far) - _centroids(out)).T) / 17.0
    assert 0.88 <= ratio.min() and ratio.max() <= 1.12
    assert ratio.max() - ratio.min() > 0.05


def test_erase_blanks_one_rectangle_in_about_half_of_the_faces(small_data: Path) -> None:
    x = to_input(_real_faces(small_data).images, MEAN, STD, torch.device("cpu"))
    out = augment(x, {"erase"}, torch.Generator().manual_seed(0))
    erased = 0
    for o, i in zip(out[:, 0], x[:, 0], strict=True):
        changed = torch.nonzero(o != i)
        if len(changed) == 0:
            continue
        erased += 1
        top, left = changed.min(0).values.tolist()
        bottom, right = changed.max(0).values.tolist()
        box = o[top : bottom + 1, left : right + 1]
        assert torch.all(box == 0.0)  # one filled rectangle at the normalised mean
        assert 8 <= bottom - top + 1 <= 23 and 8 <= right - left + 1 <= 23
        outside = o.clone()
        outside[top : bottom + 1, left : right + 1] = i[top : bottom + 1, left : right + 1]
        assert torch.equal(outside, i)
    assert 8 <= erased <= 24, erased


def test_occlude_hides_the_eyes_or_the_mouth_band_in_about_half_of_the_faces(small_data: Path) -> None:
    x = to_input(_real_faces(small_data).images, MEAN, STD, torch.device("cpu"))
    out = augment(x, {"occlude"}, torch.Generator().manual_seed(0))
    bands = {"eyes": 0, "mouth": 0}
    for o, i in zip(out[:, 0], x[:, 0], strict=True):
        rows = torch.nonzero((o != i).any(dim=1)).flatten()
        if len(rows) == 0:
            continue
        top, bottom = int(rows.min()), int(rows.max())
        assert torch.all(o[top : bottom + 1] == 0.0)  # whole rows at the normalised mean
        assert torch.equal(o[:top], i[:top]) and torch.equal(o[bottom + 1 :], i[bottom + 1 :])
        assert bottom - top + 1 <= 13
        bands["eyes" if 8 <= top <= 14 else "mouth"] += 1
        assert top <= 14 or 28 <= top <= 34, top
    assert bands["eyes"] >= 4 and bands["mouth"] >= 4, bands
    assert 8 <= sum(bands.values()) <= 24, bands


def test_offline_triple_adds_each_face_mirrored_and_rotated_by_ten_degrees(small_data: Path) -> None:
    faces = _real_faces(small_data, 8)
    tripled = offline_triple(faces)
    assert len(tripled) == 24
    np.testing.assert_array_equal(tripled.images[:8], faces.images)
    np.testing.assert_array_equal(tripled.images[8:16], faces.images[:, :, ::-1])
    matrix = cv2.getRotationMatrix2D((24.0, 24.0), 10.0, 1.0)
    for rotated, face in zip(tripled.images[16:], faces.images, strict=True):
        np.testing.assert_array_equal(rotated, cv2.warpAffine(face, matrix, (48, 48), borderMode=cv2.BORDER_REPLICATE))
        assert not np.array_equal(rotated, face)
    for name in ("labels", "targets", "rows"):
        np.testing.assert_array_equal(getattr(tripled, name), np.concatenate([getattr(faces, name)] * 3))


def test_flip_tta_averages_a_face_and_its_mirror(small_data: Path) -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 5), torch.nn.Flatten(), torch.nn.LazyLinear(8))
    images = _real_faces(small_data, 6).images
    model(to_input(images, MEAN, STD, torch.device("cpu")))  # sizes the lazy layer
    cpu = torch.device("cpu")
    plain = predict_logits(model, images, MEAN, STD, cpu, amp=False)
    mirrored = predict_logits(model, np.ascontiguousarray(images[:, :, ::-1]), MEAN, STD, cpu, amp=False)
    both = predict_logits(model, images, MEAN, STD, cpu, amp=False, tta_flip=True, batch_size=4)
    np.testing.assert_allclose(both, (plain + mirrored) / 2, rtol=1e-5, atol=1e-5)
    assert not np.allclose(plain, mirrored, atol=1e-3)  # the model is not mirror-symmetric already


# The augmentations that change each face alone and are drawn for every face (the rest: half of them).
EVERY_FACE_OPS = ("box", "brightness", "contrast", "gamma")
HALF_OF_FACES_OPS = ("blur", "noise", "jpeg")


@pytest.mark.parametrize("op", EVERY_FACE_OPS + HALF_OF_FACES_OPS)
def test_each_wider_augmentation_keeps_shape_type_and_range_and_changes_the_faces(small_data: Path, op: str) -> None:
    x = to_input(_real_faces(small_data).images, MEAN, STD, torch.device("cpu"))
    out = augment(x, {op}, torch.Generator().manual_seed(0), MEAN, STD)
    assert out.shape == x.shape and out.dtype == torch.float32
    low, high = -MEAN / STD, (1 - MEAN) / STD  # pixel values 0 and 255
    assert out.min() >= low - 1e-5 and out.max() <= high + 1e-5
    changed = [not torch.allclose(o, i, atol=1e-4) for o, i in zip(out, x, strict=True)]
    if op in EVERY_FACE_OPS:
        assert sum(changed) >= 30, sum(changed)
    else:  # half of the faces, the others left exactly as they were
        assert 8 <= sum(changed) <= 24, sum(changed)
        assert all(torch.equal(o, i) for o, i, c in zip(out, x, changed, strict=True) if not c)
    # The same seed draws the same augmentation, another seed another one.
    assert torch.equal(out, augment(x, {op}, torch.Generator().manual_seed(0), MEAN, STD))
    assert not torch.equal(out, augment(x, {op}, torch.Generator().manual_seed(1), MEAN, STD))


def test_photometric_augmentations_do_what_their_names_say(small_data: Path) -> None:
    faces = _real_faces(small_data)
    x = to_input(faces.images, 0.0, 1.0, torch.device("cpu"))  # pixel/255 units
    brighter = augment(x, {"brightness"}, torch.Generator().manual_seed(0))
    shift = (brighter - x).mean(dim=(1, 2, 3))
    assert shift.abs().max() <= 0.15 + 1e-6 and shift.min() < 0 < shift.max()
    contrast = augment(x, {"contrast"}, torch.Generator().manual_seed(0))
    spread = contrast.std(dim=(1, 2, 3)) / x.std(dim=(1, 2, 3))
    assert spread.min() < 1 < spread.max() and spread.max() <= 1.3 + 1e-3
    blurred = augment(x, {"blur"}, torch.Generator().manual_seed(0))
    roughness = [float((f[:, 1:] - f[:, :-1]).abs().mean()) for f in blurred[:, 0]]
    before = [float((f[:, 1:] - f[:, :-1]).abs().mean()) for f in x[:, 0]]
    assert all(r <= b + 1e-6 for r, b in zip(roughness, before, strict=True))  # blur only smooths
    jpeg = augment(x, {"jpeg"}, torch.Generator().manual_seed(0))
    changed = [not torch.equal(o, i) for o, i in zip(jpeg, x, strict=True)]
    # JPEG's decoded pixels are whole grey levels, and its errors are small at quality 20-80.
    assert torch.allclose(jpeg * 255, (jpeg * 255).round(), atol=1e-3)
    assert max(float((o - i).abs().mean()) for o, i, c in zip(jpeg, x, changed, strict=True) if c) < 0.05


def test_box_jitter_moves_and_scales_a_face_as_a_detector_box_would() -> None:
    x = _dot_batch(64, 23, 23)
    out = augment(x, {"box"}, torch.Generator().manual_seed(0))
    shift = _centroids(out) - _centroids(x)
    # The centre moves by at most 10% of the side (4.8 px) on each axis, divided by the smallest zoom.
    assert np.abs(shift).max() <= 4.8 / (0.85 * 0.9**0.5) + 0.3
    assert np.abs(shift).max() > 2


@pytest.mark.parametrize("op", ["mixup", "cutmix"])
def test_mixing_blends_pairs_of_faces_and_their_targets_alike(small_data: Path, op: str) -> None:
    x = to_input(_real_faces(small_data).images, MEAN, STD, torch.device("cpu"))
    target = torch.eye(32)  # each face its own class: the target tells the partner and the share
    out, mixed = mix(x, target, {op}, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == torch.float32 and mixed.shape == target.shape
    assert out.min() >= x.min() - 1e-5 and out.max() <= x.max() + 1e-5
    torch.testing.assert_close(mixed.sum(1), torch.ones(32))
    assert (mixed >= 0).all()
    blended = 0
    for i in range(32):
        own = float(mixed[i, i])
        others = torch.nonzero(mixed[i] > 0).flatten().tolist()
        partner = next((j for j in others if j != i), i)
        if partner == i:
            continue
        blended += 1
        if op == "mixup":
            torch.testing.assert_close(out[i], own * x[i] + (1 - own) * x[partner], atol=1e-5, rtol=0)
        else:  # a rectangle of the partner covering 1 - own of the face, the rest the face itself
            from_partner = (out[i, 0] == x[partner, 0]) & (x[partner, 0] != x[i, 0])
            assert int(from_partner.sum()) <= round((1 - own) * 48 * 48)
            assert torch.all((out[i, 0] == x[i, 0]) | (out[i, 0] == x[partner, 0]))
    assert blended >= 28
    again, mixed_again = mix(x, target, {op}, torch.Generator().manual_seed(0))
    assert torch.equal(again, out) and torch.equal(mixed_again, mixed)
