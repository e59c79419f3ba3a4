"""Checkpoints: a faithful round trip, and every unusable file rejected with a clear error."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from fermonitor.core.checkpoint import (
    CHECKPOINT_FORMAT,
    FERPLUS_CLASSES,
    CheckpointError,
    ModelMeta,
    load_checkpoint,
    save_checkpoint,
)
from fermonitor.core.models import build_model

ARCH = "vgg16"  # the smallest registered 48x48 architecture


def _meta(arch: str = ARCH) -> ModelMeta:
    return ModelMeta(arch=arch, classes=FERPLUS_CLASSES, mean=0.5, std=0.25, crop_margin=0.1,
                     metrics={"test_accuracy": 0.5}, train_args={"lr": 0.01, "output_dir": Path("/tmp/x")})


def _random_model(arch: str = ARCH) -> torch.nn.Module:
    torch.manual_seed(1)
    model = build_model(arch, num_classes=len(FERPLUS_CLASSES)).eval()
    # Non-trivial batch-norm statistics, so that buffers are part of what the round trip checks.
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    return model


def _predict(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return model(x)


def test_round_trip_in_full_precision_gives_equal_predictions(tmp_path: Path) -> None:
    model = _random_model()
    path = tmp_path / "model.pt"
    save_checkpoint(path, model, _meta(), half=False)
    loaded, meta = load_checkpoint(path)
    x = torch.randn(4, 1, 48, 48)
    assert torch.equal(_predict(model, x), _predict(loaded, x))
    assert not loaded.training
    assert meta.arch == ARCH
    assert meta.classes == FERPLUS_CLASSES
    assert (meta.input_size, meta.mean, meta.std, meta.crop_margin) == (48, 0.5, 0.25, 0.1)
    assert meta.metrics == {"test_accuracy": 0.5}
    assert meta.train_args == {"lr": 0.01, "output_dir": "/tmp/x"}
    assert not list(tmp_path.glob("*.tmp"))


def test_half_precision_round_trip_equals_the_fp16_rounded_model(tmp_path: Path) -> None:
    model = _random_model()
    path = tmp_path / "model.pt"
    save_checkpoint(path, model, _meta())
    stored = torch.load(path, weights_only=True)["state_dict"]
    assert all(v.dtype == torch.float16 for v in stored.values() if v.is_floating_point())
    loaded, _ = load_checkpoint(path)
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    rounded = _random_model()
    rounded.load_state_dict({k: v.half().float() if v.is_floating_point() else v
                             for k, v in model.state_dict().items()})
    x = torch.randn(4, 1, 48, 48)
    assert torch.equal(_predict(rounded, x), _predict(loaded, x))


class _Payload:
    """An object whose unpickling creates a marker file: proof that code ran during loading."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (_touch, (str(self.marker),))


def _touch(path: str) -> None:
    Path(path).write_text("code ran while loading a checkpoint\n")


def _pickled_checkpoint(path: Path, marker: Path) -> None:
    payload = {"format": CHECKPOINT_FORMAT, "version": 1, "arch": ARCH, "classes": list(FERPLUS_CLASSES),
               "input_size": 48, "mean": 0.5, "std": 0.25, "state_dict": _Payload(marker)}
    torch.save(payload, path)


def test_a_pickled_object_is_rejected_and_never_executed(tmp_path: Path) -> None:
    path, marker = tmp_path / "evil.pt", tmp_path / "marker"
    _pickled_checkpoint(path, marker)
    with pytest.raises(CheckpointError, match=r"evil\.pt holds pickled objects and was rejected"):
        load_checkpoint(path)
    assert not marker.exists()


class _BlockedModuleCall:
    """A call into a module torch blocks outright (os): another wording of torch's refusal."""

    def __reduce__(self) -> tuple:
        return (os.getcwd, ())


@pytest.mark.parametrize("payload", [
    pytest.param(lambda marker: _Payload(marker), id="a function of ours"),
    pytest.param(lambda marker: _BlockedModuleCall(), id="a call into os"),
    pytest.param(lambda marker: nn.Linear(2, 2), id="a whole pickled module"),
])
def test_a_file_with_more_than_weights_is_refused_without_torchs_advice_to_load_it_anyway(
        tmp_path: Path, payload) -> None:
    path, marker = tmp_path / "more.pt", tmp_path / "marker"
    torch.save({"format": CHECKPOINT_FORMAT, "arch": ARCH, "state_dict": payload(marker)}, path)
    with pytest.raises(CheckpointError) as refused:
        load_checkpoint(path)
    assert str(refused.value) == (f"model file {path} holds pickled objects and was rejected: fermonitor loads "
                                  "weights only, and this file holds more than weights")
    assert not marker.exists()


@pytest.mark.parametrize("content", [b"not a torch file at all\n" * 10, bytes(range(256)) * 4])
def test_no_refusal_passes_on_torchs_advice_to_load_with_weights_only_false(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "corrupt.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as refused:
        load_checkpoint(path)
    message = str(refused.value)
    assert "weights_only" not in message and "trust" not in message and "\n" not in message


def test_the_pickled_payload_really_runs_code_when_loaded_unsafely(tmp_path: Path) -> None:
    """Control for the test above: the same payload does execute under a plain pickle load."""
    path, marker = tmp_path / "evil.pt", tmp_path / "marker"
    _pickled_checkpoint(path, marker)
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"absent\.pt does not exist"):
        load_checkpoint(tmp_path / "absent.pt")


@pytest.mark.parametrize("content", [b"", b"not a torch file at all\n" * 10, bytes(range(256)) * 4])
def test_a_corrupt_file_is_rejected(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "corrupt.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=r"corrupt\.pt is not a readable checkpoint"):
        load_checkpoint(path)


def test_random_bytes_are_rejected_whatever_they_hold(tmp_path: Path) -> None:
    # Garbage fails in many places inside the unpickler (IndexError, KeyError, ...); all give one error.
    rng = np.random.default_rng(0)
    path = tmp_path / "corrupt.pt"
    for _ in range(200):
        path.write_bytes(rng.integers(0, 256, size=int(rng.integers(1, 4096)), dtype=np.uint8).tobytes())
        with pytest.raises(CheckpointError, match=r"corrupt\.pt is not a readable checkpoint"):
            load_checkpoint(path)


def test_a_truncated_checkpoint_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    save_checkpoint(path, _random_model(), _meta())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"model\.pt is not a readable checkpoint"):
        load_checkpoint(path)


def test_a_foreign_torch_file_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, path)
    with pytest.raises(CheckpointError, match=r"foreign\.pt is not a fermonitor checkpoint"):
        load_checkpoint(path)


def test_a_missing_field_is_named(tmp_path: Path) -> None:
    path = tmp_path / "partial.pt"
    torch.save({"format": CHECKPOINT_FORMAT, "arch": ARCH}, path)
    with pytest.raises(CheckpointError, match=r"partial\.pt lacks a field.*classes"):
        load_checkpoint(path)


def test_weights_that_do_not_fit_the_declared_architecture_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "mismatch.pt"
    save_checkpoint(path, _random_model("vgg16"), _meta(arch="vgg19"))
    with pytest.raises(CheckpointError, match=r"mismatch\.pt: weights do not match architecture 'vgg19'"):
        load_checkpoint(path)


def test_weights_for_a_different_class_count_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "classes.pt"
    meta = ModelMeta(arch=ARCH, classes=FERPLUS_CLASSES[:7])
    save_checkpoint(path, _random_model(), meta)
    with pytest.raises(CheckpointError, match=r"classes\.pt: weights do not match"):
        load_checkpoint(path)


def test_an_unknown_architecture_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "unknown.pt"
    save_checkpoint(path, _random_model(), _meta(arch="vgg11"))
    with pytest.raises(CheckpointError, match=r"unknown\.pt: unknown model 'vgg11'"):
        load_checkpoint(path)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("input_size", 0, "has input size 0: it must be from 1 to 1024 pixels"),
    ("input_size", -48, "has input size -48: it must be from 1 to 1024 pixels"),
    ("input_size", 10**9, "has input size 1000000000: it must be from 1 to 1024 pixels"),
    ("std", 0.0, "has normalisation std 0.0: it must be a finite number above 0"),
    ("std", -0.25, "has normalisation std -0.25: it must be a finite number above 0"),
    ("std", float("inf"), "has normalisation std inf: it must be a finite number above 0"),
    ("std", float("nan"), "has normalisation std nan: it must be a finite number above 0"),
    ("mean", float("nan"), "has normalisation mean nan: it must be a finite number"),
    ("mean", float("-inf"), "has normalisation mean -inf: it must be a finite number"),
])
def test_an_unusable_input_size_or_normalisation_is_refused_at_load(tmp_path: Path, field: str, value: float,
                                                                   message: str) -> None:
    # These values would crash the crop or turn every probability into NaN; the description is
    # checked before the weights, so a one-layer model stands in for the network here.
    path = tmp_path / "bad.pt"
    save_checkpoint(path, torch.nn.Linear(1, 1), ModelMeta(arch=ARCH, classes=FERPLUS_CLASSES, **{field: value}))
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert str(info.value) == f"model file {path} {message}"
