"""The original study's architectures (``seed_*``): torchvision's VGG and ResNet taking one channel.

Only training reproduces the study with them, so they live here and are registered into the model
registry of :mod:`fermonitor.core.models` when ``training`` is imported (``training/__init__.py``);
the app, which never imports ``training``, does not carry them. A checkpoint of a seed architecture
loads wherever ``training`` has been imported (``python -m training evaluate``).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn
from torchvision import models as tvm

from fermonitor.core.models import register_model

SEED_MODELS = ("seed_vgg16", "seed_vgg19", "seed_resnet34", "seed_resnet50")


def _seed_vgg(builder: Callable[..., tvm.VGG], num_classes: int, dropout: float) -> nn.Module:
    """The original study's VGG: torchvision's, no batch norm, first conv taking one channel.

    torchvision's classifier already holds two dropout layers (p=0.5); the original study's
    "without dropout" runs set them to 0, so ``dropout`` sets them here.
    """
    model = builder(num_classes=num_classes, dropout=dropout)
    model.features[0] = nn.Conv2d(1, 64, 3, padding=1)
    return model


def _seed_resnet(builder: Callable[..., tvm.ResNet], num_classes: int, dropout: float) -> nn.Module:
    """The original study's ResNet: torchvision's ImageNet stem, first conv taking one channel."""
    model = builder(num_classes=num_classes)
    model.conv1 = nn.Conv2d(1, 64, 7, stride=2, padding=3, bias=False)
    model.fc = nn.Sequential(nn.Dropout(dropout), model.fc)
    return model


@register_model("seed_vgg16")
def seed_vgg16(num_classes: int = 8, dropout: float = 0.0) -> nn.Module:
    return _seed_vgg(tvm.vgg16, num_classes, dropout)


@register_model("seed_vgg19")
def seed_vgg19(num_classes: int = 8, dropout: float = 0.0) -> nn.Module:
    return _seed_vgg(tvm.vgg19, num_classes, dropout)


@register_model("seed_resnet34")
def seed_resnet34(num_classes: int = 8, dropout: float = 0.0) -> nn.Module:
    return _seed_resnet(tvm.resnet34, num_classes, dropout)


@register_model("seed_resnet50")
def seed_resnet50(num_classes: int = 8, dropout: float = 0.0) -> nn.Module:
    return _seed_resnet(tvm.resnet50, num_classes, dropout)
