"""The classifier API other tools rely on: load_classifier(path, device), .classes, .predict."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from shared_data import DATA_DIR

from fermonitor.core import resources
from fermonitor.core.checkpoint import FERPLUS_CLASSES, CheckpointError, ModelMeta, save_checkpoint
from fermonitor.core.classifier import load_classifier
from fermonitor.core.models import build_model
from fermonitor.core.preprocess import normalise_faces


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random VGG19 checkpoint: the shipped architecture, untrained."""
    torch.manual_seed(2)
    path = tmp_path_factory.mktemp("model") / "random_vgg19.pt"
    save_checkpoint(path, build_model("vgg19"), ModelMeta(arch="vgg19", classes=FERPLUS_CLASSES, mean=0.5, std=0.25))
    return path


@pytest.fixture(scope="module")
def real_faces() -> np.ndarray:
    """Twelve real FER2013 faces, uint8 (12, 48, 48)."""
    fer = DATA_DIR / "fer2013.csv.gz"
    if not fer.is_file():
        pytest.skip(f"real FER2013 data not found at {fer}")
    from training.data import read_fer2013

    images, _, _ = read_fer2013(fer)
    return images[::3000][:12].copy()


def test_path_none_without_an_installed_model_names_the_path(monkeypatch: pytest.MonkeyPatch,
                                                              tmp_path: Path) -> None:
    monkeypatch.setattr(resources, "resources_dir", lambda: tmp_path / "resources")
    with pytest.raises(CheckpointError, match="no expression model is installed at") as info:
        load_classifier()
    message = str(info.value)
    assert str(tmp_path / "resources" / "models") in message
    assert "python -m training export" in message and "--model PATH" in message
    assert "\n" not in message


def test_a_missing_explicit_path_is_named(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"nowhere\.pt does not exist"):
        load_classifier(tmp_path / "nowhere.pt", device="cpu")


def test_classes_are_the_ferplus_emotions_in_order(checkpoint: Path) -> None:
    clf = load_classifier(checkpoint, device="cpu")
    assert clf.classes == ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt")
    assert isinstance(clf.classes, tuple)


def test_predict_returns_probabilities(checkpoint: Path, real_faces: np.ndarray) -> None:
    clf = load_classifier(checkpoint, device="cpu")
    probabilities = clf.predict(real_faces)
    assert probabilities.shape == (len(real_faces), 8)
    assert probabilities.dtype == np.float32
    assert np.all(probabilities >= 0) and np.all(probabilities <= 1)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_predict_matches_the_plain_model(checkpoint: Path, real_faces: np.ndarray) -> None:
    """Batching, channels_last and inference mode change nothing beyond float rounding."""
    from fermonitor.core.checkpoint import load_checkpoint

    model, meta = load_checkpoint(checkpoint)
    with torch.no_grad():
        logits = model(torch.from_numpy(normalise_faces(real_faces, meta.mean, meta.std)))
    expected = torch.softmax(logits, dim=1).numpy()
    clf = load_classifier(checkpoint, device="cpu", reduced_precision=False)
    np.testing.assert_allclose(clf.predict(real_faces), expected, atol=1e-5)


def test_a_face_gets_the_same_answer_alone_or_in_a_batch(checkpoint: Path, real_faces: np.ndarray) -> None:
    clf = load_classifier(checkpoint, device="cpu", reduced_precision=False)
    batched = clf.predict(real_faces)
    one_by_one = np.concatenate([clf.predict(real_faces[i : i + 1]) for i in range(len(real_faces))])
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)


def test_an_empty_batch_gives_an_empty_result(checkpoint: Path) -> None:
    clf = load_classifier(checkpoint, device="cpu")
    result = clf.predict(np.zeros((0, 48, 48), dtype=np.uint8))
    assert result.shape == (0, 8) and result.dtype == np.float32


@pytest.mark.parametrize("faces", [
    np.zeros((2, 64, 64), dtype=np.uint8),
    np.zeros((48, 48), dtype=np.uint8),
    np.zeros((2, 48, 48, 3), dtype=np.uint8),
    np.zeros((2, 48, 48), dtype=np.float32),
], ids=["wrong-size", "no-batch-axis", "colour", "float"])
def test_bad_input_names_the_expected_and_the_given_shape(checkpoint: Path, faces: np.ndarray) -> None:
    clf = load_classifier(checkpoint, device="cpu")
    with pytest.raises(ValueError, match=r"faces must be uint8 \(N, 48, 48\), got " + str(faces.dtype)) as info:
        clf.predict(faces)
    assert str(faces.shape) in str(info.value)


def test_an_unknown_device_is_a_clear_error(checkpoint: Path) -> None:
    with pytest.raises(ValueError, match="device 'gpu7'"):
        load_classifier(checkpoint, device="gpu7")


def test_asking_for_cuda_without_a_gpu_is_a_clear_error(checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # as on a machine without one
    with pytest.raises(ValueError, match=r"^device 'cuda:0' was asked for but this machine has no usable CUDA GPU$"):
        load_classifier(checkpoint, device="cuda:0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # one GPU, and the second is asked for
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ValueError, match=r"^device 'cuda:1' was asked for but this machine has 1 CUDA GPU\(s\)"):
        load_classifier(checkpoint, device="cuda:1")


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="this machine has Apple's MPS")
def test_asking_for_mps_without_it_is_a_clear_error(checkpoint: Path) -> None:
    with pytest.raises(ValueError, match=r"^device 'mps' was asked for but this machine has no usable Apple MPS GPU$"):
        load_classifier(checkpoint, device="mps")


def test_a_pickled_checkpoint_is_refused_by_the_classifier(tmp_path: Path) -> None:
    path = tmp_path / "weights.pt"
    torch.save({"format": "fermonitor-checkpoint", "state_dict": _Evil()}, path)
    with pytest.raises(CheckpointError, match="holds pickled objects"):
        load_classifier(path, device="cpu")


class _Evil:
    def __reduce__(self) -> tuple:
        return (print, ("unpickled",))


def test_an_input_size_the_architecture_cannot_take_is_refused_at_load(tmp_path: Path) -> None:
    path = tmp_path / "small_input.pt"  # vgg19's five poolings need at least 32 pixels
    save_checkpoint(path, build_model("vgg19"), ModelMeta(arch="vgg19", classes=FERPLUS_CLASSES, input_size=16))
    with pytest.raises(CheckpointError) as info:
        load_classifier(path, device="cpu")
    assert str(info.value).startswith(f"model file {path} (vgg19, input size 16) does not run (")
