"""Expression classifier: a checkpoint, a device and one batched forward pass per analysis step."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from fermonitor.core.checkpoint import CheckpointError, ModelMeta, load_checkpoint
from fermonitor.core.device import pick_device, reduced_precision_default
from fermonitor.core.preprocess import normalise_faces
from fermonitor.core.resources import default_model_path

log = logging.getLogger(__name__)

MODEL_HELP = (
    "train one with `python -m training train` (training/README.md) or reinstall fermonitor, "
    "whose resources/models/ carries the shipped model"
)


class ExpressionClassifier:
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
        self.meta = meta
        self.device = device
        self.reduced_precision = reduced_precision_default(device) if reduced_precision is None else reduced_precision
        self.model = model.to(device).eval()
        if device.type == "cpu":
            self.model = self.model.to(memory_format=torch.channels_last)

    @property
    def classes(self) -> tuple[str, ...]:
        return self.meta.classes

    @property
    def input_size(self) -> int:
        return self.meta.input_size

    @torch.inference_mode()
    def predict(self, faces: np.ndarray) -> np.ndarray:
        """Class probabilities for a batch of faces.

        Parameters
        ----------
        faces
            uint8 array (N, S, S) of grey face crops, S the model's input size (48).

        Returns
        -------
        np.ndarray
            float32 (N, number of classes), rows summing to 1.
        """
        faces = np.asarray(faces)
        size = self.meta.input_size
        if faces.ndim != 3 or faces.shape[1:] != (size, size) or faces.dtype != np.uint8:
            raise ValueError(f"faces must be uint8 (N, {size}, {size}), got {faces.dtype} {faces.shape}")
        if len(faces) == 0:
            return np.zeros((0, len(self.classes)), dtype=np.float32)
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


def load_classifier(path: str | Path | None = None, device: str = "auto",
                    reduced_precision: bool | None = None) -> ExpressionClassifier:
    """Load an expression classifier.

    Parameters
    ----------
    path
        A fermonitor checkpoint; ``None`` takes the shipped model in resources/models/.
    device
        "auto" (CUDA, MPS, else CPU), or a torch device name such as "cpu" or "cuda:0".
    reduced_precision
        See :class:`ExpressionClassifier`.

    Raises
    ------
    CheckpointError
        When the model file is missing, corrupt, pickled or does not match its architecture.
    """
    model_path = default_model_path() if path is None else Path(path)
    if path is None and not model_path.is_file():
        raise CheckpointError(f"no expression model is installed at {model_path}: {MODEL_HELP}")
    model, meta = load_checkpoint(model_path)
    torch_device = pick_device(device)
    log.info("loaded %s (%s) on %s", model_path, meta.arch, torch_device)
    return ExpressionClassifier(model, meta, torch_device, reduced_precision)
