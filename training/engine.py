"""One epoch of training, evaluation and the official-protocol metrics."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import asdict, dataclass, fields

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fermonitor.core.preprocess import normalise_faces
from training.data import FaceSplit
from training.distributed import sum_over_ranks

# Online augmentations that --augment accepts; see augment() and mix().
AUGMENT_OPS = ("flip", "rotate", "crop", "erase", "box", "brightness", "contrast", "gamma", "blur", "noise", "jpeg",
               "occlude", "mixup", "cutmix")
# Those that blend two faces and their targets (mix()); the rest change each face alone (augment()).
MIX_OPS = frozenset({"mixup", "cutmix"})
GEOMETRIC_OPS = frozenset({"flip", "rotate", "crop", "box"})
# "box": a detector box's jitter around the face: side scaled by 0.85-1.18 (log-uniform), width and
# height apart by up to 10%, centre offset by up to 10% of the side on each axis.
BOX_SCALE_RANGE = (0.85, 1.0 / 0.85)
BOX_ASPECT_RANGE = (0.9, 1.0 / 0.9)
BOX_OFFSET_SHARE = 0.1
BRIGHTNESS_SHIFT = 0.15  # +- this, in pixel/255 units, to every face
CONTRAST_RANGE = (0.7, 1.3)  # factor on each face's deviations from its own mean
GAMMA_RANGE = (0.7, 1.0 / 0.7)  # exponent on pixel/255, log-uniform
BLUR_SIGMA_PX = (0.4, 1.2)  # Gaussian blur of half of the faces; a 48 px face seen from further away
NOISE_SIGMA = (0.01, 0.05)  # Gaussian noise on half of the faces, pixel/255 units (2.5-13 grey levels)
JPEG_QUALITY = (20, 80)  # cv2.imencode quality for half of the faces (webcam streams, screen shares)
MIXUP_ALPHA = 0.4  # Beta(alpha, alpha) share of the first face (Zhang et al. 2018: 0.1-0.4 for ImageNet)
CUTMIX_ALPHA = 1.0  # Beta(1, 1): the pasted area is uniform (Yun et al. 2019)
# "occlude": half of the faces lose one band across the face, the eyes and brows or the mouth
# (rows of a 48 px FER2013 face, first row and height), moved up or down by up to OCCLUDE_SHIFT_PX.
OCCLUDE_BANDS = ((11, 13), (31, 13))
OCCLUDE_SHIFT_PX = 3


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


def shard_batches(n: int, batch_size: int, generator: np.random.Generator, rank: int,
                  world_size: int) -> Iterator[np.ndarray]:
    """This rank's part of each shuffled batch of ``batch_size`` (the global batch) over ``n`` items.

    The epoch's order is split as torch's DistributedSampler splits it: padded with its first items
    to a multiple of ``world_size``, rank r takes every world_size-th item from the r-th, in batches
    of ``batch_size // world_size``. Together the ranks' k-th batches are the k-th batch of
    :func:`batches` with the same generator, so several processes train on the batches one would.
    """
    order = generator.permutation(n)
    order = np.concatenate([order, order[: -n % world_size]])  # the padding DistributedSampler adds
    shard = order[rank::world_size]
    local = batch_size // world_size
    for start in range(0, len(shard), local):
        yield shard[start : start + local]


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


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return low + torch.rand(n, generator=generator) * (high - low)


def _log_uniform(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return torch.exp(_uniform(n, math.log(low), math.log(high), generator))


def _numpy_rng(generator: torch.Generator) -> np.random.Generator:
    """A numpy generator seeded from ``generator``, for draws torch has no seeded sampler for (Beta):
    the draws still follow from the torch generator's state alone (what a resume restores)."""
    return np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=generator)))


def _warp(x: torch.Tensor, ops: set[str], generator: torch.Generator) -> torch.Tensor:
    """The geometric ops in one affine warp: box jitter, then rotation, scale and shift, then the flip."""
    n, _, _, w = x.shape
    cpu = dict(generator=generator)
    angle = (torch.rand(n, **cpu) * 2 - 1) * math.radians(10) if "rotate" in ops else torch.zeros(n)
    scale = 0.9 + torch.rand(n, **cpu) * 0.2 if "crop" in ops else torch.ones(n)
    shift = (torch.rand(n, 2, **cpu) * 2 - 1) * (8.0 / w) if "crop" in ops else torch.zeros(n, 2)
    flip = torch.where(torch.rand(n, **cpu) < 0.5, -1.0, 1.0) if "flip" in ops else torch.ones(n)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    zeros, ones = torch.zeros(n), torch.ones(n)
    # 3x3 matrices from output to input coordinates (affine_grid's theta), in [-1, 1] image units.
    turn = torch.stack([torch.stack([cos * flip, -sin, shift[:, 0]], 1), torch.stack([sin * flip, cos, shift[:, 1]], 1),
                        torch.stack([zeros, zeros, ones], 1)], 1)
    if "box" in ops:  # the input box the output shows: side, aspect and centre of a jittered detection
        side = _log_uniform(n, *BOX_SCALE_RANGE, generator)
        aspect = _log_uniform(n, *BOX_ASPECT_RANGE, generator).sqrt()
        offset = (torch.rand(n, 2, **cpu) * 2 - 1) * (2 * BOX_OFFSET_SHARE)
        box = torch.stack([torch.stack([side * aspect, zeros, offset[:, 0]], 1),
                           torch.stack([zeros, side / aspect, offset[:, 1]], 1), torch.stack([zeros, zeros, ones], 1)], 1)
        turn = box @ turn
    theta = turn[:, :2].to(x.device, x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _gaussian_blur(p: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Each image of ``p`` (N, 1, H, W) blurred with its own ``sigma`` (N,) in pixels, edges reflected."""
    n, _, h, w = p.shape
    radius = math.ceil(3 * BLUR_SIGMA_PX[1])
    taps = torch.arange(-radius, radius + 1, dtype=p.dtype, device=p.device)
    kernel = torch.exp(-0.5 * (taps[None, :] / sigma.to(p.device, p.dtype)[:, None]) ** 2)
    kernel = kernel / kernel.sum(1, keepdim=True)
    rows = F.conv2d(F.pad(p.reshape(1, n, h, w), (radius, radius, 0, 0), mode="reflect"),
                    kernel[:, None, None, :], groups=n)
    both = F.conv2d(F.pad(rows, (0, 0, radius, radius), mode="reflect"), kernel[:, None, :, None], groups=n)
    return both.reshape(n, 1, h, w)


def _jpeg(p: torch.Tensor, quality: np.ndarray) -> torch.Tensor:
    """Each image of ``p`` (N, 1, H, W, pixel/255 units) through a JPEG encoder at its ``quality`` (N,)."""
    faces = (p[:, 0].float().cpu().numpy() * 255.0).round().clip(0, 255).astype(np.uint8)
    out = []
    for face, q in zip(faces, quality, strict=True):
        ok, encoded = cv2.imencode(".jpg", face, [cv2.IMWRITE_JPEG_QUALITY, int(q)])
        if not ok:
            raise RuntimeError(f"cv2.imencode could not write a JPEG at quality {q}")
        out.append(cv2.imdecode(encoded, cv2.IMREAD_GRAYSCALE))
    return torch.from_numpy(np.stack(out)[:, None].astype(np.float32) / 255.0).to(p.device, p.dtype)


def _photometric(p: torch.Tensor, ops: set[str], generator: torch.Generator) -> torch.Tensor:
    """Brightness, contrast, gamma, blur, noise and JPEG on faces in pixel/255 units, kept in [0, 1]."""
    n = p.shape[0]
    cpu = dict(generator=generator)

    def per_face(values: torch.Tensor) -> torch.Tensor:
        return values.to(p.device, p.dtype)[:, None, None, None]

    def half() -> torch.Tensor:  # which faces an op applies to, p=0.5 each
        return torch.rand(n, **cpu) < 0.5

    if "brightness" in ops:
        p = (p + per_face(_uniform(n, -BRIGHTNESS_SHIFT, BRIGHTNESS_SHIFT, generator))).clamp(0.0, 1.0)
    if "contrast" in ops:
        centre = p.mean(dim=(1, 2, 3), keepdim=True)
        p = (centre + (p - centre) * per_face(_uniform(n, *CONTRAST_RANGE, generator))).clamp(0.0, 1.0)
    if "gamma" in ops:
        p = p.clamp(min=0.0) ** per_face(_log_uniform(n, *GAMMA_RANGE, generator))
    if "blur" in ops:
        chosen, sigma = half(), _uniform(n, *BLUR_SIGMA_PX, generator)
        p = torch.where(per_face(chosen) > 0, _gaussian_blur(p, sigma), p)
    if "noise" in ops:
        chosen, sigma = half(), _uniform(n, *NOISE_SIGMA, generator)
        noise = torch.randn(p.shape, **cpu).to(p.device, p.dtype) * per_face(sigma * chosen)
        p = (p + noise).clamp(0.0, 1.0)
    if "jpeg" in ops:
        chosen = half()
        quality = torch.randint(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1, (n,), **cpu).numpy()
        if chosen.any():
            p = p.clone()
            p[chosen.to(p.device)] = _jpeg(p[chosen.to(p.device)], quality[chosen.numpy()])
    return p


def augment(x: torch.Tensor, ops: set[str], generator: torch.Generator, mean: float = 0.0,
            std: float = 1.0) -> torch.Tensor:
    """Online augmentation of a normalised batch (N, 1, H, W), each face on its own.

    ``mean`` and ``std`` are the batch's normalisation (pixel/255 units), which the photometric ops
    undo and redo. Geometric ops, all in one affine warp (edges replicated): "flip" (horizontal,
    p=0.5), "rotate" (+-10 degrees), "crop" (shift +-4 px and scale 0.9-1.1), "box" (a detector
    box's scale, aspect and offset jitter, see BOX_*). Photometric ops, every face: "brightness",
    "contrast", "gamma"; half of the faces: "blur", "noise", "jpeg" (see their constants). Then
    "erase" (one random rectangle set to the mean, p=0.5), then "occlude" (the eyes-and-brows or the
    mouth band set to the mean, p=0.5: a face must be read from either half alone, as posed anger
    shows in the brows with the mouth closed). Mixing ops are :func:`mix`'s, not applied here. The
    output stays in the input's range, at most [-mean/std, (1-mean)/std].
    """
    n, _, h, w = x.shape
    cpu = dict(generator=generator)
    if ops & GEOMETRIC_OPS:
        x = _warp(x, ops, generator)
    if ops & {"brightness", "contrast", "gamma", "blur", "noise", "jpeg"}:
        x = (_photometric(x * std + mean, ops, generator) - mean) / std
    if "erase" in ops:
        x = x.clone()
        for i in torch.nonzero(torch.rand(n, **cpu) < 0.5).flatten().tolist():
            eh, ew = (int(v) for v in torch.randint(8, h // 2, (2,), **cpu))
            y0 = int(torch.randint(0, h - eh, (1,), **cpu))
            x0 = int(torch.randint(0, w - ew, (1,), **cpu))
            x[i, :, y0 : y0 + eh, x0 : x0 + ew] = 0.0
    if "occlude" in ops:
        x = x.clone()
        scale = h / 48.0
        for i in torch.nonzero(torch.rand(n, **cpu) < 0.5).flatten().tolist():
            top, height = OCCLUDE_BANDS[int(torch.randint(0, len(OCCLUDE_BANDS), (1,), **cpu))]
            shift = int(torch.randint(-OCCLUDE_SHIFT_PX, OCCLUDE_SHIFT_PX + 1, (1,), **cpu))
            y0 = int(round((top + shift) * scale))
            x[i, :, y0 : y0 + int(round(height * scale)), :] = 0.0
    return x.contiguous(memory_format=torch.channels_last)


def mix(x: torch.Tensor, target: torch.Tensor, ops: set[str],
        generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixup or cutmix of a batch with a shuffled copy of itself, targets (N, C) mixed alike.

    Each face gets a partner from one random permutation and a share ``lam`` of its own face:
    "mixup" blends the two images, lam ~ Beta(MIXUP_ALPHA); "cutmix" pastes a rectangle of the
    partner covering 1 - lam of the face, lam ~ Beta(CUTMIX_ALPHA) and then set to the area kept.
    With both, each batch takes one of them at random. Targets stay distributions (rows sum to 1),
    so plain and soft targets both work.
    """
    chosen = [op for op in ("mixup", "cutmix") if op in ops]
    if not chosen:
        return x, target
    n, _, h, w = x.shape
    op = chosen[int(torch.randint(0, len(chosen), (1,), generator=generator))]
    partner = torch.randperm(n, generator=generator).to(x.device)
    rng = _numpy_rng(generator)
    if op == "mixup":
        lam = torch.from_numpy(rng.beta(MIXUP_ALPHA, MIXUP_ALPHA, n).astype(np.float32)).to(x.device)
        x = lam[:, None, None, None].to(x.dtype) * x + (1 - lam[:, None, None, None]).to(x.dtype) * x[partner]
    else:
        cut = np.sqrt(1.0 - rng.beta(CUTMIX_ALPHA, CUTMIX_ALPHA, n))  # side shares of the pasted rectangle
        cy, cx = rng.integers(0, h, n), rng.integers(0, w, n)
        lam_values = np.empty(n, dtype=np.float32)
        x, pasted_from = x.clone(), x[partner]
        for i in range(n):
            ch, cw = int(round(h * cut[i])), int(round(w * cut[i]))
            y0, y1 = max(cy[i] - ch // 2, 0), min(cy[i] + ch - ch // 2, h)
            x0, x1 = max(cx[i] - cw // 2, 0), min(cx[i] + cw - cw // 2, w)
            x[i, :, y0:y1, x0:x1] = pasted_from[i, :, y0:y1, x0:x1]
            lam_values[i] = 1.0 - (y1 - y0) * (x1 - x0) / (h * w)  # the share of the face's own pixels
        lam = torch.from_numpy(lam_values).to(x.device)
    target = lam[:, None] * target + (1 - lam[:, None]) * target[partner]
    return x.contiguous(memory_format=torch.channels_last), target


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


class Teacher:
    """Soft targets from one or more trained models (knowledge distillation, Hinton et al. 2015).

    The teachers see the batch the student sees, augmented and mixed alike, so the student learns to
    match their whole function rather than fixed labels (Beyer et al. 2022, "a good teacher is
    patient and consistent"). Several teachers are an ensemble: the mean of their probabilities.
    ``flip`` also averages each teacher's probabilities for the mirrored batch (test-time
    augmentation as a teacher). Inputs come normalised with the student's ``mean`` and ``std`` and
    are renormalised for each teacher's own.
    """

    def __init__(self, models: list[nn.Module], norms: list[tuple[float, float]], mean: float, std: float,
                 flip: bool = False, amp: bool = False):
        self.models = [model.eval() for model in models]
        self.norms, self.mean, self.std, self.flip, self.amp = norms, mean, std, flip, amp

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """The mean probability distribution (N, C) that the teachers give ``x`` (N, 1, H, W)."""
        pixels = x.float() * self.std + self.mean
        views = [pixels, pixels.flip(3)] if self.flip else [pixels]
        probs = torch.zeros((), device=x.device)
        for model, (mean, std) in zip(self.models, self.norms, strict=True):
            for view in views:
                with autocast_for(x.device, self.amp):
                    logits = model(((view - mean) / std).contiguous(memory_format=torch.channels_last))
                probs = probs + torch.softmax(logits.float(), dim=1)
        return probs / (len(self.models) * len(views))


def logit_adjustment(targets: np.ndarray, tau: float, device: torch.device) -> torch.Tensor:
    """``tau`` x log of the class prior of ``targets`` (N, C), to add to the logits in the training loss.

    The logit-adjusted loss (Menon et al. 2021) asks a rare class to win by a wider margin while
    training, so the plain logits the model gives at inference favour it more than cross-entropy
    would; 0 gives zeros (plain cross-entropy). A class with less than one face's target mass
    counts as one face's (no infinite handicap).
    """
    prior = targets.sum(axis=0, dtype=np.float64)
    prior = np.maximum(prior, 1.0) / max(prior.sum(), 1.0)
    return torch.from_numpy((tau * np.log(prior)).astype(np.float32)).to(device)


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
    rank: int = 0,
    world_size: int = 1,
    teacher: Teacher | None = None,
) -> dict[str, float]:
    """Train one pass over ``split``; returns mean loss and training accuracy (of this rank's faces).

    ``scaler`` scales the loss for fp16 autocast (:func:`make_grad_scaler`); None trains without.
    ``start`` continues an epoch that stopped part-way (its batches and augmentation draws follow
    on exactly); ``after_step`` sees the progress after every batch (to save it now and then).
    With ``world_size`` processes, this one (``rank``) trains its share of each batch of
    ``args.batch_size`` faces (:func:`shard_batches`) with augmentation draws of its own.
    With a ``teacher``, a share ``args.distill`` of each target is the teacher's distribution for
    the face as the student sees it.
    """
    scaler = scaler if scaler is not None else torch.amp.GradScaler(device.type, enabled=False)
    model.train()
    rng = np.random.default_rng(args.seed * 1000 + epoch)
    aug_seed = args.seed * 1000 + epoch
    if rank:  # each rank draws its own augmentations; rank 0 those of a one-process run
        aug_seed = int(np.random.SeedSequence([aug_seed, rank]).generate_state(1)[0])
    aug_gen = torch.Generator().manual_seed(aug_seed)
    done = start if start is not None else EpochProgress()
    if done.aug_state is not None:
        aug_gen.set_state(done.aug_state.cpu())  # a GPU run's last.pth loads it onto the GPU
    if progress is not None:
        progress.update(done.seen)
    ops = set(args.augment)
    # Drawn once per epoch from a stream of its own, so a resume inside the epoch draws the same labels.
    targets = draw_labels(split.targets, np.random.default_rng([args.seed * 1000 + epoch, 1])) \
        if args.draw_labels else split.targets
    adjust = logit_adjustment(split.targets, args.logit_adjust, device)
    order = batches(len(split), args.batch_size, rng) if world_size == 1 else \
        shard_batches(len(split), args.batch_size, rng, rank, world_size)
    for step, index in enumerate(order):
        if step < done.step:  # trained before the interruption
            continue
        x = to_input(split.images[index], args.mean, args.std, device)
        target = torch.from_numpy(targets[index]).to(device)
        if ops - MIX_OPS:
            x = augment(x, ops - MIX_OPS, aug_gen, args.mean, args.std)
        if ops & MIX_OPS:
            x, target = mix(x, target, ops, aug_gen)
        if teacher is not None:
            target = (1.0 - args.distill) * target + args.distill * teacher(x)
        with autocast_for(device, args.amp):
            logits = model(x)
        loss = F.cross_entropy(logits.float() + adjust, target, label_smoothing=args.label_smoothing)
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
    # Over the faces of all ranks (a collective with several processes).
    loss_sum, correct, seen = sum_over_ranks([done.loss_sum, done.correct, done.seen], device) if world_size > 1 \
        else (done.loss_sum, done.correct, done.seen)
    return {"train_loss": loss_sum / max(seen, 1), "train_acc": correct / max(seen, 1)}


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


def study_footing(model: nn.Module, split: FaceSplit, args, device: torch.device) -> dict:
    """Accuracy and macro-F1 on the original study's footing: ``split`` in argmax10 mode (10 classes,
    :func:`training.data.load_study_split`). A model with only the 8 emotion outputs never says
    unknown or NF, so those faces count against it, as they would have in the study."""
    logits = predict_logits(model, split.images, args.mean, args.std, device, args.amp)
    predicted = logits[:, : len(split.classes)].argmax(axis=1)
    metrics = classification_metrics(split.labels, predicted, len(split.classes))
    return {"accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"], "faces": len(split),
            "labels": "PublicTest (FER2013Valid), argmax of all 10 vote columns, every face listed"}


def metrics_from_logits(logits: np.ndarray, split: FaceSplit) -> dict:
    """Official-protocol metrics of logits (N, >= 8) for the faces of a majority-mode split, in order;
    columns after the 8 emotions are left out."""
    num_classes = len(split.classes)
    predicted = logits[:, :num_classes].argmax(axis=1)
    metrics = classification_metrics(split.labels, predicted, num_classes)
    log_probs = torch.log_softmax(torch.from_numpy(logits), dim=1)[:, :num_classes]
    metrics["loss"] = float(-log_probs[torch.arange(len(split)), torch.from_numpy(split.labels)].mean())
    return metrics
