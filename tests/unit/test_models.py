"""The model registry: every architecture runs on a tiny CPU batch; bad names fail clearly."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from torch import nn

from fermonitor.core import models
from fermonitor.core.models import build_model, list_models, register_model

EXPECTED_MODELS = {"vgg16", "vgg19", "resnet34", "resnet50"}  # the study's seed_* models are in training/


def test_registry_holds_the_issue_architectures() -> None:
    assert EXPECTED_MODELS <= set(list_models())
    assert list_models() == sorted(list_models())


@pytest.mark.parametrize("name", list_models())
def test_forward_pass_on_a_tiny_cpu_batch(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, num_classes=8).eval()
    with torch.inference_mode():
        logits = model(torch.randn(2, 1, 48, 48))
    assert logits.shape == (2, 8)
    assert logits.dtype == torch.float32
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name", ["vgg19", "resnet34"])
def test_num_classes_sets_the_output_width(name: str) -> None:
    model = build_model(name, num_classes=10).eval()
    with torch.inference_mode():
        assert model(torch.zeros(2, 1, 48, 48)).shape == (2, 10)


def test_dropout_reaches_the_head() -> None:
    model = build_model("vgg19", dropout=0.3)
    probabilities = [m.p for m in model.modules() if isinstance(m, nn.Dropout)]
    assert probabilities == [0.3]


def test_unknown_model_names_the_registered_ones() -> None:
    with pytest.raises(KeyError, match="unknown model 'vgg11'.*vgg19"):
        build_model("vgg11")


def test_registering_a_name_twice_fails() -> None:
    with pytest.raises(ValueError, match="'vgg19' is already registered"):
        register_model("vgg19")(models.vgg19)


@pytest.fixture()
def forget_tiny_linear() -> Iterator[None]:
    yield
    models.unregister_model("tiny_linear")


def test_a_new_registration_is_buildable(forget_tiny_linear: None) -> None:
    @register_model("tiny_linear")
    def tiny_linear(num_classes: int = 8, dropout: float = 0.0) -> nn.Module:
        return nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(48 * 48, num_classes))

    assert "tiny_linear" in list_models()
    assert build_model("tiny_linear", num_classes=3)(torch.zeros(2, 1, 48, 48)).shape == (2, 3)
