"""Self-describing model checkpoints: architecture, classes, preprocessing, metrics and weights."""

from __future__ import annotations

import math
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fermonitor.core.errors import one_line

if TYPE_CHECKING:
    from torch import nn

# torch is imported inside the functions that need it: ModelMeta and CheckpointError are shared
# with the onnxruntime backend, which runs in the standalone executable without torch.

CHECKPOINT_FORMAT = "fermonitor-checkpoint"
CHECKPOINT_VERSION = 1

FERPLUS_CLASSES: tuple[str, ...] = (
    "neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt",
)
MAX_INPUT_SIZE_PX = 1024  # far above any face model's input (FER+ models take 48); larger is a broken file


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used: missing, unreadable, pickled or mismatched."""


@dataclass(frozen=True)
class ModelMeta:
    """Everything needed to rebuild a model and feed it, beside its weights."""

    arch: str
    classes: tuple[str, ...]
    input_size: int = 48
    mean: float = 0.5
    std: float = 0.25
    crop_margin: float = 0.0
    metrics: dict[str, Any] = field(default_factory=dict)
    train_args: dict[str, Any] = field(default_factory=dict)


def check_meta(meta: ModelMeta, path: str | Path) -> None:
    """Refuse a description that cannot feed its model: an input size out of 1 to
    ``MAX_INPUT_SIZE_PX`` pixels, a normalisation mean that is not finite, a std that is not a
    finite number above 0 (either would turn every probability into NaN or noise).

    Raises
    ------
    CheckpointError
        Naming ``path``, the value and what it must be.
    """
    if not 1 <= meta.input_size <= MAX_INPUT_SIZE_PX:
        raise CheckpointError(f"model file {path} has input size {meta.input_size}: it must be from 1 to "
                              f"{MAX_INPUT_SIZE_PX} pixels")
    if not math.isfinite(meta.mean):
        raise CheckpointError(f"model file {path} has normalisation mean {meta.mean}: it must be a finite number")
    if not (math.isfinite(meta.std) and meta.std > 0):
        raise CheckpointError(f"model file {path} has normalisation std {meta.std}: it must be a finite number "
                              "above 0")


def save_checkpoint(path: str | Path, model: nn.Module, meta: ModelMeta, half: bool = True) -> None:
    """Write ``model`` and ``meta`` to ``path`` (fp16 weights unless ``half`` is False).

    Only plain containers, numbers, strings and tensors are stored, so the file loads with
    ``torch.load(weights_only=True)``.
    """
    import torch

    state = {
        key: (value.half() if half and value.is_floating_point() else value).detach().cpu().contiguous()
        for key, value in model.state_dict().items()
    }
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "arch": meta.arch,
        "classes": list(meta.classes),
        "input_size": meta.input_size,
        "mean": float(meta.mean),
        "std": float(meta.std),
        "crop_margin": float(meta.crop_margin),
        "metrics": _plain(meta.metrics),
        "train_args": _plain(meta.train_args),
        "state_dict": state,
    }
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)


def load_checkpoint(path: str | Path) -> tuple[nn.Module, ModelMeta]:
    """Load a checkpoint written by :func:`save_checkpoint`; the model is fp32, in eval mode.

    Raises
    ------
    CheckpointError
        When the file is missing, not a torch file, holds pickled objects, its input size or
        normalisation is unusable (:func:`check_meta`), or its weights do not fit its declared
        architecture.
    """
    import torch

    from fermonitor.core.models import build_model

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"model file {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch raises UnpicklingError both for a forbidden global (a pickled object: code or a
        # class to run) and for bytes that are no pickle at all. Its message advises loading the
        # file with weights_only=False, which would run that code: none of it is passed on.
        if _names_a_global(str(exc)):
            raise CheckpointError(f"model file {path} holds pickled objects and was rejected: fermonitor loads "
                                  "weights only, and this file holds more than weights") from exc
        raise CheckpointError(f"model file {path} is not a readable checkpoint "
                              f"({_unpickler_detail(str(exc))})") from exc
    except Exception as exc:  # garbage bytes can fail anywhere in the unpickler (IndexError, KeyError, ...)
        raise CheckpointError(f"model file {path} is not a readable checkpoint "
                              f"({_unpickler_detail(str(exc))})") from exc
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"model file {path} is not a fermonitor checkpoint")
    try:
        meta = ModelMeta(
            arch=str(payload["arch"]),
            classes=tuple(str(c) for c in payload["classes"]),
            input_size=int(payload["input_size"]),
            mean=float(payload["mean"]),
            std=float(payload["std"]),
            crop_margin=float(payload.get("crop_margin", 0.0)),
            metrics=dict(payload.get("metrics", {})),
            train_args=dict(payload.get("train_args", {})),
        )
        state = payload["state_dict"]
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"model file {path} lacks a field or has a wrong one ({exc})") from exc
    check_meta(meta, path)
    dropout = float(meta.train_args.get("dropout", 0.0))
    try:
        model = build_model(meta.arch, num_classes=len(meta.classes), dropout=dropout)
    except KeyError as exc:
        raise CheckpointError(f"model file {path}: {exc.args[0]}") from exc
    try:
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    except RuntimeError as exc:
        raise CheckpointError(f"model file {path}: weights do not match architecture {meta.arch!r} "
                              f"({one_line(exc)})") from exc
    return model.eval(), meta


def _names_a_global(message: str) -> bool:
    """Whether torch's weights-only error is about a global (a class or function the file names),
    as "Unsupported global: GLOBAL x.y" or "unsupported GLOBAL x.y whose module x is blocked" say."""
    return re.search(r"\bunsupported global\b", message, re.IGNORECASE) is not None


def _unpickler_detail(message: str) -> str:
    """The first line of torch's weights-only error that says what is wrong with the bytes, without
    its preamble and without its advice on loading the file another way."""
    _, marker, rest = message.partition("WeightsUnpickler error:")
    text = rest if marker else message
    for line in text.splitlines():
        line = line.strip()
        if line and not _ADVICE.search(line):
            return line
    return "unreadable content"


# Lines of torch's message that advise how to load the file anyway (weights_only=False, allowlisting
# globals, the documentation): never shown, since following them can run code from the file.
_ADVICE = re.compile(r"weights_only|Weights only load failed|safe_globals|add_safe_globals|documentation of "
                     r"torch\.load|trust", re.IGNORECASE)


def _plain(value: Any) -> Any:
    """Reduce metrics and arguments to types that ``weights_only`` loading accepts."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):
        return value.item()
    return str(value)
