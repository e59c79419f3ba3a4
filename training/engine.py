"""One epoch of training, evaluation and the official-protocol metrics."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import asdict, dataclass, fields

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fermonitor.core.preprocess import normalise_faces
from training.data import FaceSplit

# Online augmentations that --augment accepts; see augment().
AUGMENT_OPS = ("flip", "rotate", "crop", "erase")


def amp_dtype(device: torch.device) -> torch.dtype:
    """bf16 wherever the device has it (CPU, current GPUs): it needs no loss scaling; fp16 on older GPUs."""
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


def autocast_for(device: torch.device, enabled: bool):
    """Autocast to :func:`amp_dtype`, nothing when disabled."""
    if not enabled:
        return nullcontext()
    return torch.autocast(device.type, dtype=amp_dtype(device))


def make_grad_scaler(device: torch.device, amp: bool) -> torch.amp.GradScaler:
    """Loss scaling for fp16 autocast, where small gradients would underflow to zero; a pass-through
    for fp32 and bf16."""
    return torch.amp.GradScaler(device.type, enabled=amp and amp_dtype(device) == torch.float16)


def batches(n: int, batch_size: int, generator: np.random.Generator | None) -> Iterator[np.ndarray]:
    """Index batches over ``n`` items, shuffled when a generator is given; the last may be short."""
    order = generator.permutation(n) if generator is not None else np.arange(n)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


def draw_labels(targets: np.ndarray, generator: np.random.Generator) -> np.ndarray:
    """The FER+ paper's probabilistic label drawing (PLD): for each face, one class drawn with the
    probabilities of its target row, returned as one-hot targets."""
    cumulative = targets.cumsum(axis=1)
    point = generator.random((len(targets), 1)) * cumulative[:, -1:]
    drawn = np.minimum((cumulative <= point).sum(axis=1), targets.shape[1] - 1)  # the class whose span holds point
    return np.eye(targets.shape[1], dtype=np.float32)[drawn]


def to_input(faces: np.ndarray, mean: float, std: float, device: torch.device) -> torch.Tensor:
    x = torch.from_numpy(normalise_faces(faces, mean, std)).to(device)
    return x.contiguous(memory_format=torch.channels_last)


def augment(x: torch.Tensor, ops: set[str], generator: torch.Generator) -> torch.Tensor:
    """Online augmentation of a normalised batch (N, 1, H, W), all samples in one affine warp.

    ops: "flip" (horizontal, p=0.5), "rotate" (+-10 degrees), "crop" (shift +-4 px and scale
    0.9-1.1, a random-resized-crop for small faces), "erase" (one random rectangle, p=0.5).
    """
    n, _, h, w = x.shape
    cpu = dict(generator=generator)
    angle = (torch.rand(n, **cpu) * 2 - 1) * math.radians(10) if "rotate" in ops else torch.zeros(n)
    scale = 0.9 + torch.rand(n, **cpu) * 0.2 if "crop" in ops else torch.ones(n)
    shift = (torch.rand(n, 2, **cpu) * 2 - 1) * (8.0 / w) if "crop" in ops else torch.zeros(n, 2)
    flip = torch.where(torch.rand(n, **cpu) < 0.5, -1.0, 1.0) if "flip" in ops else torch.ones(n)
    if ops & {"rotate", "crop", "flip"}:
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        theta = torch.stack([torch.stack([cos * flip, -sin, shift[:, 0]], 1),
                             torch.stack([sin * flip, cos, shift[:, 1]], 1)], 1).to(x.device, x.dtype)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if "erase" in ops:
        x = x.clone()
        for i in torch.nonzero(torch.rand(n, **cpu) < 0.5).flatten().tolist():
            eh, ew = (int(v) for v in torch.randint(8, h // 2, (2,), **cpu))
            y0 = int(torch.randint(0, h - eh, (1,), **cpu))
            x0 = int(torch.randint(0, w - ew, (1,), **cpu))
            x[i, :, y0 : y0 + eh, x0 : x0 + ew] = 0.0
    return x.contiguous(memory_format=torch.channels_last)


@dataclass
class EpochProgress:
    """How far an epoch has come: batches done, their summed loss, right answers and faces, and
    the augmentation generator's state after them (what a resume inside the epoch needs)."""

    step: int = 0
    loss_sum: float = 0.0
    correct: int = 0
    seen: int = 0
    aug_state: torch.Tensor | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, saved: dict) -> EpochProgress:
        """The progress that :meth:`to_dict` saved (``saved`` may hold more keys)."""
        return cls(**{f.name: saved[f.name] for f in fields(cls)})


def train_one_epoch(
    model: nn.Module,
    split: FaceSplit,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    args,
    device: torch.device,
    epoch: int,
    progress=None,
    scaler: torch.amp.GradScaler | None = None,
    start: EpochProgress | None = None,
    after_step: Callable[[EpochProgress], None] | None = None,
) -> dict[str, float]:
    """Train one pass over ``split``; returns mean loss and training accuracy.

    ``scaler`` scales the loss for fp16 autocast (:func:`make_grad_scaler`); None trains without.
    ``start`` continues an epoch that stopped part-way (its batches and augmentation draws follow
    on exactly); ``after_step`` sees the progress after every batch (to save it now and then).
    """
    scaler = scaler if scaler is not None else torch.amp.GradScaler(device.type, enabled=False)
    model.train()
    rng = np.random.default_rng(args.seed * 1000 + epoch)
    aug_gen = torch.Generator().manual_seed(args.seed * 1000 + epoch)
    done = start if start is not None else EpochProgress()
    if done.aug_state is not None:
        aug_gen.set_state(done.aug_state.cpu())  # a GPU run's last.pth loads it onto the GPU
    if progress is not None:
        progress.update(done.seen)
    ops = set(args.augment)
    # Drawn once per epoch from a stream of its own, so a resume inside the epoch draws the same labels.
    targets = draw_labels(split.targets, np.random.default_rng([args.seed * 1000 + epoch, 1])) \
        if args.draw_labels else split.targets
    for step, index in enumerate(batches(len(split), args.batch_size, rng)):
        if step < done.step:  # trained before the interruption
            continue
        x = to_input(split.images[index], args.mean, args.std, device)
        if ops:
            x = augment(x, ops, aug_gen)
        target = torch.from_numpy(targets[index]).to(device)
        with autocast_for(device, args.amp):
            logits = model(x)
        loss = F.cross_entropy(logits.float(), target, label_smoothing=args.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if args.clip_grad_norm:
            scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
            nn.utils.clip_grad_norm_(model.parameters(), args.clip_grad_norm)
        scaler.step(optimizer)
        scaler.update()
        if scheduler is not None:
            scheduler.step()
        done.step = step + 1
        done.loss_sum += loss.item() * len(index)
        done.correct += int((logits.argmax(1).cpu() == torch.from_numpy(split.labels[index])).sum())
        done.seen += len(index)
        if progress is not None:
            progress.update(len(index))
            progress.set_postfix(loss=f"{done.loss_sum / done.seen:.3f}", acc=f"{done.correct / done.seen:.3f}")
        if after_step is not None:
            done.aug_state = aug_gen.get_state()
            after_step(done)
    return {"train_loss": done.loss_sum / max(done.seen, 1), "train_acc": done.correct / max(done.seen, 1)}


@torch.inference_mode()
def predict_logits(model: nn.Module, images: np.ndarray, mean: float, std: float, device: torch.device,
                   amp: bool, batch_size: int = 256, tta_flip: bool = False) -> np.ndarray:
    """Logits for uint8 faces (N, H, W), in order; optionally averaged with the mirrored face."""
    model.eval()
    out = []
    for index in batches(len(images), batch_size, None):
        x = to_input(images[index], mean, std, device)
        with autocast_for(device, amp):
            logits = model(x).float()
            if tta_flip:
                logits = (logits + model(torch.flip(x, dims=[3])).float()) / 2
        out.append(logits.cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)


def classification_metrics(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> dict:
    """Accuracy, macro-F1, per-class recall and the confusion matrix (rows: true, columns: predicted)."""
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    true_per_class = confusion.sum(axis=1)
    predicted_per_class = confusion.sum(axis=0)
    hits = np.diag(confusion)
    recall = np.divide(hits, true_per_class, out=np.zeros(num_classes), where=true_per_class > 0)
    precision = np.divide(hits, predicted_per_class, out=np.zeros(num_classes), where=predicted_per_class > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(num_classes), where=(precision + recall) > 0)
    present = true_per_class > 0
    return {
        "accuracy": float(hits.sum() / max(confusion.sum(), 1)),
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "recall": recall.tolist(),
        "confusion": confusion.tolist(),
    }


def evaluate(model: nn.Module, split: FaceSplit, args, device: torch.device, tta_flip: bool = False) -> dict:
    """Official-protocol metrics of ``model`` on a majority-mode split (8 emotions).

    A model with extra outputs (the original study's unknown and NF) is scored on its first 8.
    """
    logits = predict_logits(model, split.images, args.mean, args.std, device, args.amp, tta_flip=tta_flip)
    return metrics_from_logits(logits, split)


def metrics_from_logits(logits: np.ndarray, split: FaceSplit) -> dict:
    """Official-protocol metrics of logits (N, >= 8) for the faces of a majority-mode split, in order;
    columns after the 8 emotions are left out."""
    num_classes = len(split.classes)
    predicted = logits[:, :num_classes].argmax(axis=1)
    metrics = classification_metrics(split.labels, predicted, num_classes)
    log_probs = torch.log_softmax(torch.from_numpy(logits), dim=1)[:, :num_classes]
    metrics["loss"] = float(-log_probs[torch.arange(len(split)), torch.from_numpy(split.labels)].mean())
    return metrics
