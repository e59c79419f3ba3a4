"""Choosing where models run and which reduced precision is worth it there."""

from __future__ import annotations

import torch


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` takes CUDA, then Apple's MPS, then the CPU; any other name is used as given."""
    if name != "auto":
        try:
            device = torch.device(name)
        except RuntimeError as exc:
            raise ValueError(f"device {name!r} is not a torch device name ({exc})") from exc
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {name!r} was asked for but this machine has no usable CUDA GPU")
        if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {name!r} was asked for but this machine has "
                             f"{torch.cuda.device_count()} CUDA GPU(s), numbered from 0")
        mps = getattr(torch.backends, "mps", None)
        if device.type == "mps" and not (mps is not None and mps.is_available()):
            raise ValueError(f"device {name!r} was asked for but this machine has no usable Apple MPS GPU")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def cpu_has_fast_bf16() -> bool:
    """True when oneDNN has native bf16 kernels (AVX512-BF16 or AMX); elsewhere bf16 is emulated
    and measured here about 20x slower than fp32 (AVX2-only CPUs)."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def reduced_precision_default(device: torch.device) -> bool:
    """Whether autocast pays off by default: always on CUDA, on the CPU only with native bf16."""
    if device.type == "cuda":
        return True
    if device.type == "cpu":
        return cpu_has_fast_bf16()
    return False
