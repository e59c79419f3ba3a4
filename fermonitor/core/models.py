"""Model registry: the architectures fermonitor can train and run, for 48x48 one-channel faces.

The original study's architectures (``seed_*``), used only to train and compare, are registered by
``training.seed_models`` when ``training`` is imported; the app never imports it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torchvision import models as tvm

from fermonitor.core.registry import Registry

ModelBuilder = Callable[..., nn.Module]

_REGISTRY: Registry[ModelBuilder] = Registry("model")

# VGG layer plans ("M" is a 2x2 max-pool); numbers are output channels.
_VGG_PLANS: dict[str, list[int | str]] = {
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
              512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


register_model = _REGISTRY.register
unregister_model = _REGISTRY.unregister
list_models = _REGISTRY.names


def build_model(name: str, num_classes: int = 8, dropout: float = 0.0) -> nn.Module:
    """Build a registered architecture with freshly initialised weights.

    Parameters
    ----------
    name
        A name from :func:`list_models`.
    num_classes
        Number of output logits.
    dropout
        Dropout probability before the classifier (0 disables it).
    """
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; registered models: {', '.join(list_models())}")
    return _REGISTRY[name](num_classes=num_classes, dropout=dropout)


class VGG48(nn.Module):
    """VGG with batch norm adapted to 48x48 faces: five pools take 48 to 1, one linear head."""

    def __init__(self, plan: list[int | str], num_classes: int, dropout: float) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 1
        for item in plan:
            if item == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(channels, int(item), 3, padding=1, bias=False),
                           nn.BatchNorm2d(int(item)), nn.ReLU(inplace=True)]
                channels = int(item)
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(channels, num_classes))
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)))


def _resnet48(builder: Callable[..., tvm.ResNet], num_classes: int, dropout: float) -> nn.Module:
    """A torchvision ResNet whose stem keeps 48x48 resolution: 3x3 stride-1 conv, no max-pool."""
    model = builder(num_classes=num_classes)
    model.conv1 = nn.Conv2d(1, 64, 3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    model.fc = nn.Sequential(nn.Dropout(dropout), model.fc)
    return model


@register_model("vgg16")
def vgg16(num_classes: int = 8, dropout: float = 0.0) -> nn.Module:
    return VGG48(_VGG_PLANS["vgg16"], num_classes, dropout)


@register_model("vgg19")
def vgg19(num_classes: int = 8, dropout: float = 0.0) -> nn.Module:
    return VGG48(_VGG_PLANS["vgg19"], num_classes, dropout)


@register_model("resnet34")
def resnet34(num_classes: int = 8, dropout: float = 0.0) -> nn.Module:
    return _resnet48(tvm.resnet34, num_classes, dropout)


@register_model("resnet50")
def resnet50(num_classes: int = 8, dropout: float = 0.0) -> nn.Module:
    return _resnet48(tvm.resnet50, num_classes, dropout)
