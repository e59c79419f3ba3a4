"""Expression classifier: a checkpoint, a device and one batched forward pass per analysis step.

Two backends give the same probabilities: torch (training, GPUs, CPUs with native bf16) and
onnxruntime (the standalone executable, which carries no torch, and CPUs where torch would run
fp32: there onnxruntime is as fast at batch 32 and faster at small batches, benchmarks/RESULTS.md).
This module imports without torch; torch is imported when the torch backend runs, or to choose the
backend for the shipped model when both are installed.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from fermonitor.core.checkpoint import CheckpointError, ModelMeta
from fermonitor.core.classifier_base import FaceBatchClassifier
from fermonitor.core.cpu import cpu_has_vnni
from fermonitor.core.errors import one_line
from fermonitor.core.preprocess import normalise_faces
from fermonitor.core.resources import default_model_path

if TYPE_CHECKING:
    import torch

    from fermonitor.core.onnx_backend import OnnxClassifier

log = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "onnx", "int8")  # int8: onnxruntime with the shipped model's int8 file

MODEL_HELP = (
    "reinstall fermonitor, whose fermonitor/resources/models/ carries the shipped model, or pass --model PATH "
    "with a model from `python -m training export` (its .onnx file; from source also its --half .pt; "
    "training/README.md)"
)


class Classifier(Protocol):
    """What the pipeline needs from either backend."""

    meta: ModelMeta

    @property
    def classes(self) -> tuple[str, ...]: ...

    @property
    def input_size(self) -> int: ...

    def predict(self, faces: np.ndarray) -> np.ndarray: ...


class ExpressionClassifier(FaceBatchClassifier):
    """Runs a checkpointed expression model on batches of 48x48 grey faces.

    Parameters
    ----------
    model
        A model from :func:`fermonitor.core.checkpoint.load_checkpoint`.
    meta
        Its description: classes, input size, normalisation.
    device
        Where to run it.
    reduced_precision
        bf16 autocast and channels_last on the CPU, fp16 autocast on CUDA; ``None`` decides by
        hardware (on for CUDA and CPUs with native bf16, off elsewhere, where bf16 is emulated).
    """

    def __init__(self, model: torch.nn.Module, meta: ModelMeta, device: torch.device,
                 reduced_precision: bool | None = None) -> None:
        import torch

        from fermonitor.core.device import reduced_precision_default

        self.meta = meta
        self.device = device
        self.reduced_precision = reduced_precision_default(device) if reduced_precision is None else reduced_precision
        self.model = model.to(device).eval()
        if device.type == "cpu":
            self.model = self.model.to(memory_format=torch.channels_last)

    @property
    def runtime(self) -> str:
        """What runs the model, for the log and the session JSON."""
        precision = ("fp16" if self.device.type == "cuda" else "bf16") if self.reduced_precision else "fp32"
        return f"torch {precision} on {self.device}"

    def _probabilities(self, faces: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            x = torch.from_numpy(normalise_faces(faces, self.meta.mean, self.meta.std)).to(self.device)
            if self.device.type == "cpu":
                x = x.contiguous(memory_format=torch.channels_last)
            if self.reduced_precision:
                dtype = torch.float16 if self.device.type == "cuda" else torch.bfloat16
                with torch.autocast(self.device.type, dtype=dtype):
                    logits = self.model(x)
            else:
                logits = self.model(x)
            return torch.softmax(logits.float(), dim=1).cpu().numpy().astype(np.float32)


def torch_available() -> bool:
    """Whether torch can be imported here (it is absent from the standalone executable)."""
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False


def shipped_backends() -> list[str]:
    """The backends installed here together with their shipped model file ("torch" first)."""
    from fermonitor.core.onnx_backend import onnxruntime_available

    ready = []
    if torch_available() and default_model_path("torch").is_file():
        ready.append("torch")
    for backend in ("onnx", "int8"):
        if onnxruntime_available() and default_model_path(backend).is_file():
            ready.append(backend)
    return ready


def resolve_backend(backend: str, path: Path | None, device: str = "auto",
                    reduced_precision: bool | None = None) -> str:
    """The backend that runs ``path``: forced, else by file type; for the shipped model (``path``
    None) its int8 file on a CPU with VNNI, else onnxruntime where torch would run fp32 on the CPU,
    torch elsewhere (GPUs, CPUs with native bf16), each only where it is installed with its file.

    Raises
    ------
    ValueError
        For an unknown backend name, or one that cannot run here or cannot read ``path``.
    """
    from fermonitor.core.onnx_backend import onnxruntime_available

    if backend not in BACKENDS:
        raise ValueError(f"backend {backend!r} is not one of {', '.join(BACKENDS)}")
    if backend == "auto" and path is not None:
        backend = "onnx" if path.suffix.lower() == ".onnx" else "torch"
    elif backend == "auto":
        ready = shipped_backends()
        on_cpu = _runs_on_cpu(device)
        if "int8" in ready and on_cpu and not reduced_precision and cpu_has_vnni():
            backend = "int8"
        elif "torch" in ready and "onnx" in ready:
            backend = "onnx" if on_cpu and _torch_would_run_fp32_on_cpu(device, reduced_precision) else "torch"
        elif ready:
            backend = next(b for b in ready if b != "int8" or on_cpu)
        elif torch_available():  # its missing file is named later
            backend = "torch"
        elif onnxruntime_available():
            backend = "onnx"
        else:
            raise ValueError("neither torch nor onnxruntime is installed: pip install onnxruntime")
    if backend == "torch" and not torch_available():
        raise ValueError("backend 'torch' was asked for but torch is not installed (the standalone executable runs 'onnx')")
    if backend in ("onnx", "int8") and not onnxruntime_available():
        raise ValueError(f"backend {backend!r} was asked for but onnxruntime is not installed: pip install onnxruntime")
    if path is not None and backend == "torch" and path.suffix.lower() == ".onnx":
        raise ValueError(f"model file {path} is an ONNX export; the torch backend reads .pt checkpoints")
    if path is not None and backend in ("onnx", "int8") and path.suffix.lower() == ".pt":
        raise ValueError(f"model file {path} is a torch checkpoint; the onnx backend reads its .onnx export")
    return backend


def load_classifier(path: str | Path | None = None, device: str = "auto",
                    reduced_precision: bool | None = None,
                    backend: str = "auto") -> ExpressionClassifier | OnnxClassifier:
    """Load an expression classifier.

    Parameters
    ----------
    path
        A fermonitor checkpoint (.pt) or its ONNX export (.onnx); ``None`` takes the shipped model
        in fermonitor/resources/models/ for the chosen backend.
    device
        "auto" (CUDA, MPS, else CPU), or a device name such as "cpu" or "cuda:0" (the onnx
        backend runs on cpu or cuda).
    reduced_precision
        See :class:`ExpressionClassifier`; the onnx backend always runs fp32.
    backend
        "auto" (the file type decides; for the shipped model see :func:`resolve_backend`),
        "torch", "onnx" or "int8" (the shipped model's int8 file on onnxruntime). The choice is
        logged and described by the classifier's ``runtime``.

    Raises
    ------
    CheckpointError
        When the model file is missing, corrupt or pickled, its input size or normalisation is
        unusable, or it does not match its architecture (a torch model is run once on a blank face).
    ValueError
        For a backend or device that cannot run here.
    """
    chosen = resolve_backend(backend, None if path is None else Path(path), device, reduced_precision)
    model_path = default_model_path(chosen) if path is None else Path(path)
    if path is None and not model_path.is_file():
        raise CheckpointError(f"no expression model is installed at {model_path}: {MODEL_HELP}")
    if chosen in ("onnx", "int8"):
        from fermonitor.core.onnx_backend import OnnxClassifier

        classifier = OnnxClassifier(model_path, device)
    else:
        classifier = _load_torch(model_path, device, reduced_precision)
    why = "" if path is not None or backend != "auto" else f" ({_why_backend(chosen)})"
    log.info("classifier: %s%s", classifier.runtime, why)
    return classifier


def _why_backend(chosen: str) -> str:
    """Why ``resolve_backend`` chose ``chosen`` for the shipped model, for the log."""
    return {"int8": "the CPU has VNNI int8 instructions",
            "onnx": "torch would run fp32 on this CPU, or is not installed"}.get(
        chosen, "a GPU, a CPU with native bf16, or the only backend installed with its model")


def _load_torch(model_path: Path, device: str, reduced_precision: bool | None) -> ExpressionClassifier:
    from fermonitor.core.checkpoint import load_checkpoint
    from fermonitor.core.device import pick_device

    model, meta = load_checkpoint(model_path)
    torch_device = pick_device(device)
    classifier = ExpressionClassifier(model, meta, torch_device, reduced_precision)
    size = meta.input_size
    try:  # an input size the architecture cannot take (too small for its pooling) fails here, not at the first face
        classifier.predict(np.zeros((1, size, size), np.uint8))
    except RuntimeError as exc:
        raise CheckpointError(f"model file {model_path} ({meta.arch}, input size {size}) does not run "
                              f"({one_line(exc)})") from exc
    log.info("loaded %s (%s) on %s", model_path, meta.arch, torch_device)
    return classifier


def _runs_on_cpu(device: str) -> bool:
    """Whether ``device`` means the CPU here ("auto" without a CUDA or MPS device)."""
    if device == "cpu" or device.startswith("cpu:"):
        return True
    if device != "auto":
        return False
    if torch_available():
        import torch

        return not (torch.cuda.is_available() or torch.backends.mps.is_available())
    import onnxruntime

    from fermonitor.core.onnx_backend import CUDA_PROVIDER

    return CUDA_PROVIDER not in onnxruntime.get_available_providers()


def _torch_would_run_fp32_on_cpu(device: str, reduced_precision: bool | None) -> bool:
    """Whether torch would run the model in fp32 on the CPU, by the rule ExpressionClassifier
    follows (``reduced_precision``, else what pays off on the device)."""
    from fermonitor.core.device import pick_device, reduced_precision_default

    try:
        chosen = pick_device(device)
    except ValueError:
        return False  # torch then names the device it cannot use
    reduced = reduced_precision if reduced_precision is not None else reduced_precision_default(chosen)
    return chosen.type == "cpu" and not reduced
