"""Train one model on FER+ (shape of torchvision's references/classification/train.py)."""

from __future__ import annotations

import argparse
import csv
import functools
import hashlib
import json
import logging
import math
import time
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import cv2
import numpy as np
import torch

from fermonitor.core.checkpoint import CheckpointError, ModelMeta, load_checkpoint, save_checkpoint
from fermonitor.core.device import pick_device, reduced_precision_default
from fermonitor.core.errors import one_line
from fermonitor.core.models import build_model, list_models
from training import distributed
from training.data import (
    IMAGE_SIDE_PX,
    LABEL_MODES,
    DataPaths,
    FaceSplit,
    load_splits,
    load_study_split,
)
from training.engine import (
    AUGMENT_OPS,
    EpochProgress,
    Teacher,
    evaluate,
    make_grad_scaler,
    study_footing,
    train_one_epoch,
)

log = logging.getLogger(__name__)

DEFAULT_DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"
# Seed of the fixed valid/test subset behind --eval-fraction, independent of --seed.
EVAL_SUBSET_SEED = 20160101
SUMMARY_FIELDS = ["epoch", "lr", "train_loss", "train_acc", "valid_loss", "valid_acc", "valid_macro_f1", "seconds"]
# Settings a resumed run must share with the run that wrote last.pth: they shape the model's
# outputs, the optimizer state or the schedule that last.pth holds. The optimizer's own settings are
# among them because loading its state brings back the saved ones: a new value would be ignored.
RESUME_FIXED = ("arch", "label_mode", "opt", "sched", "cycle_momentum", "lr", "momentum", "nesterov", "weight_decay")
# Settings that also fix the order of an epoch's batches: a resume inside an epoch needs them
# unchanged, and the same number of training faces (other data options change it).
MID_EPOCH_FIXED = ("batch_size", "seed", "train_fraction", "offline_triple")


def _bounded(convert, accepts, message: str, name: str):
    """An argparse type: ``convert`` the text, and refuse a value ``accepts`` rejects (nan too)
    with ``message`` ({} is the text)."""

    def parse(text: str):
        value = convert(text)
        if not accepts(value):
            raise argparse.ArgumentTypeError(message.format(text))
        return value

    parse.__name__ = name  # argparse names the type in its message for text convert() refuses
    return parse


positive_int = _bounded(int, lambda v: v > 0, "{} is not a whole number above 0", "positive_int")
non_negative_int = _bounded(int, lambda v: v >= 0, "{} is negative", "non_negative_int")
positive_float = _bounded(float, lambda v: v > 0, "{} is not a number above 0", "positive_float")
non_negative_float = _bounded(float, lambda v: v >= 0, "{} is not a number of 0 or more", "non_negative_float")
share_below_one = _bounded(float, lambda v: 0.0 <= v < 1.0, "{} is not a share in [0, 1)", "share_below_one")
fraction = _bounded(float, lambda v: 0.0 < v <= 1.0, "{} is not a share in (0, 1]", "fraction")


def augment_list(text: str) -> list[str]:
    ops = [op for op in text.split(",") if op]
    unknown = [op for op in ops if op not in AUGMENT_OPS]
    if unknown:
        raise argparse.ArgumentTypeError(f"{', '.join(unknown)} not known; choose from {','.join(AUGMENT_OPS)}")
    return ops


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Train an expression model on FER+", add_help=add_help)
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                   help="folder with fer2013.csv(.gz), fer2013new.csv and ferplus/")
    p.add_argument("--votes", default="label_csv", choices=["label_csv", "fer2013new"],
                   help="label_csv: the FERPlus label files (official protocol); fer2013new: the newer votes, "
                        "for every split, so validation and test figures are not on the official protocol")
    p.add_argument("--arch", default="vgg19", choices=list_models())
    p.add_argument("--label-mode", default="majority", choices=LABEL_MODES, help="training labels")
    p.add_argument("--soft-targets", action="store_true",
                   help="majority mode: train on each face's vote distribution instead of one-hot")
    p.add_argument("--draw-labels", action="store_true",
                   help="the FER+ paper's probabilistic label drawing: each epoch, train each face on one emotion "
                        "drawn from its distribution (with --soft-targets or --label-mode probability)")
    p.add_argument("--epochs", type=positive_int, default=12)
    p.add_argument("--batch-size", type=positive_int, default=64,
                   help="images per step, over all processes of a torchrun run (each takes its share)")
    p.add_argument("--opt", default="sgd", choices=["sgd", "adam"])
    p.add_argument("--lr", type=positive_float, default=0.05, help="peak learning rate")
    p.add_argument("--momentum", type=non_negative_float, default=0.9, help="SGD momentum")
    p.add_argument("--nesterov", action="store_true")
    p.add_argument("--cycle-momentum", action="store_true",
                   help="with --sched onecycle: momentum (SGD) or beta1 (Adam) cycles from 0.95 to 0.85 and back "
                        "against the learning rate, torch's OneCycleLR default; without it they stay as set")
    p.add_argument("--weight-decay", type=non_negative_float, default=5e-4, help="L2 on all weights")
    p.add_argument("--sched", default="onecycle", choices=["onecycle", "cosine", "none"],
                   help="per-step schedule; onecycle warms up for 15%% of the steps")
    p.add_argument("--label-smoothing", type=share_below_one, default=0.0, help="share of target mass spread evenly")
    p.add_argument("--logit-adjust", type=non_negative_float, default=0.0,
                   help="logit-adjusted loss for the rare classes: adds TAU x log(class prior of the training "
                        "targets) to the logits in the loss only (Menon et al. 2021); 0 is plain cross-entropy")
    p.add_argument("--dropout", type=share_below_one, default=0.0, help="dropout before the classifier")
    p.add_argument("--augment", default="", type=augment_list,
                   help=f"online: comma list of {','.join(AUGMENT_OPS)} (see training/README.md, "
                        "\"Online augmentation\"); mixup and cutmix also mix the targets")
    p.add_argument("--offline-triple", action="store_true",
                   help="the original study's flip + rotate copies of the training split (3x images)")
    p.add_argument("--train-fraction", type=fraction, default=1.0, help="share of the training split used")
    p.add_argument("--eval-fraction", type=fraction, default=1.0,
                   help="share of valid and test scored; a fixed subset, the same for every run and seed")
    p.add_argument("--clip-grad-norm", type=non_negative_float, default=0.0, help="0 disables clipping")
    p.add_argument("--mean", type=float, default=0.5, help="input normalisation, pixel/255 units")
    p.add_argument("--std", type=positive_float, default=0.25)
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, mps")
    p.add_argument("--threads", type=non_negative_int, default=0, help="CPU threads (0: torch's default)")
    p.add_argument("--sync-bn", action="store_true",
                   help="torchrun on GPUs: batch-norm statistics over the whole batch of all processes, not "
                        "each process's share")
    p.add_argument("--amp", default="auto", choices=["auto", "on", "off"],
                   help="bf16 autocast (fp16 with loss scaling on GPUs without bf16); auto: CUDA, or a CPU with native bf16")
    p.add_argument("--output-dir", type=Path, default=Path("runs/vgg19"))
    p.add_argument("--resume", action="store_true", help="continue from output-dir/last.pth")
    p.add_argument("--save-minutes", type=non_negative_float, default=10.0,
                   help="also save last.pth inside an epoch at most this often, so a stopped run loses at most "
                        "these minutes (0: at the end of each epoch only)")
    p.add_argument("--keep-epochs", action="store_true",
                   help="also keep each epoch's weights as output-dir/epochNNN.pt (for `average`)")
    p.add_argument("--init", type=Path, default=None,
                   help="start from the weights of this fermonitor checkpoint (fine-tuning a shipped model)")
    p.add_argument("--teacher", type=Path, nargs="+", default=None, metavar="CHECKPOINT",
                   help="distil from these fermonitor checkpoints (several: an ensemble, their mean probabilities) "
                        "on the faces as the student sees them, augmented and mixed")
    p.add_argument("--distill", type=fraction, default=0.5,
                   help="with --teacher: share of each target that is the teacher's distribution")
    p.add_argument("--teacher-flip", action="store_true",
                   help="with --teacher: the teachers also see each face mirrored, and their probabilities are averaged")
    p.add_argument("--test-only", action="store_true", help="evaluate output-dir/best.pt on the test split")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    return p


def offline_triple(split: FaceSplit) -> FaceSplit:
    """The original study's augmentation: each face, its mirror and a copy rotated by 10 degrees."""
    centre = (split.images.shape[2] / 2, split.images.shape[1] / 2)
    matrix = cv2.getRotationMatrix2D(centre, 10.0, 1.0)
    rotated = np.stack([cv2.warpAffine(img, matrix, img.shape[::-1], borderMode=cv2.BORDER_REPLICATE)
                        for img in split.images])
    return FaceSplit(
        np.concatenate([split.images, split.images[:, :, ::-1], rotated]),
        np.tile(split.labels, 3), np.tile(split.targets, (3, 1)), np.tile(split.rows, 3), split.classes,
    )


def make_optimizer(model: torch.nn.Module, args) -> torch.optim.Optimizer:
    if args.opt == "adam":
        return torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum,
                           nesterov=args.nesterov and args.momentum > 0, weight_decay=args.weight_decay)


def make_scheduler(optimizer, args, steps_per_epoch: int, steps_done: int = 0):
    """A per-step schedule over ``args.epochs``, computed from the step number alone, so a resumed
    run joins it exactly at ``steps_done`` (which needs the optimizer state of a run that had a
    schedule), also when its epoch budget was changed."""
    total = args.epochs * steps_per_epoch
    if args.sched == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, total_steps=total, pct_start=0.15,
                                                   cycle_momentum=args.cycle_momentum, last_epoch=steps_done - 1)
    if args.sched == "cosine":  # from lr down to 0; torch's CosineAnnealingLR steps recursively instead
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total)), last_epoch=steps_done - 1)
    return None


def prepare_data(args) -> dict[str, FaceSplit]:
    splits = load_splits(DataPaths.in_folder(args.data_dir), args.label_mode, args.votes, args.soft_targets)
    train = splits["train"]
    if args.train_fraction < 1.0:
        keep = np.random.default_rng(args.seed).permutation(len(train))[: int(len(train) * args.train_fraction)]
        if len(keep) == 0:
            raise ValueError(f"--train-fraction {args.train_fraction} keeps none of the {len(train)} training faces")
        train = train.subset(np.sort(keep))
    if args.offline_triple:
        train = offline_triple(train)
    splits["train"] = train
    if args.eval_fraction < 1.0:
        for name in ("valid", "test"):
            split = splits[name]
            order = np.random.default_rng(EVAL_SUBSET_SEED).permutation(len(split))
            splits[name] = split.subset(np.sort(order[: max(1, int(len(split) * args.eval_fraction))]))
    return splits


def meta_for(args, classes, metrics, init_sha256: str | None = None) -> ModelMeta:
    """The description saved with the weights; with --init, the starting checkpoint's SHA-256 too, since
    its path may later hold another model (the shipped one is replaced in place)."""
    train_args = args_dict(args)
    if init_sha256 is not None:
        train_args["init_sha256"] = init_sha256
    return ModelMeta(arch=args.arch, classes=tuple(classes), input_size=IMAGE_SIDE_PX, mean=args.mean, std=args.std,
                     metrics=metrics, train_args=train_args)


def recorded_path(path: str | Path, run_dir: str | Path) -> str:
    """``path`` as args.json and checkpoint metadata record it: relative to the run folder ``run_dir``
    when inside it ("." for the run folder itself), else by its name alone (the data folder as "data").
    Where files lay on the machine that trained is no part of a result, and a committed or shipped
    record must not hold it."""
    path, run_dir = Path(path).resolve(), Path(run_dir).resolve()
    return path.relative_to(run_dir).as_posix() if path.is_relative_to(run_dir) else path.name


def args_dict(args) -> dict:
    """The run's arguments as plain values, paths (alone or in a list) as :func:`recorded_path` records them."""
    run_dir = getattr(args, "output_dir", None) or Path(".")

    def plain(value: Any) -> Any:
        if isinstance(value, list):
            return [plain(v) for v in value]
        return recorded_path(value, run_dir) if isinstance(value, Path) else value

    return {k: plain(v) for k, v in vars(args).items()}


def _is_machine_path(text: str) -> bool:
    """Whether ``text`` names a place on one machine: an absolute POSIX or Windows path, or ~."""
    return (PurePosixPath(text).is_absolute() or PureWindowsPath(text).is_absolute()
            or text.startswith("~"))


def portable_record(value: Any, key: str | None = None) -> Any:
    """A record written before paths were recorded portably (train_args or metrics of an older
    checkpoint), with each absolute path replaced as :func:`recorded_path` would have recorded it:
    output_dir as ".", any other path by its name. Export and average copy such records into the
    files they write."""
    if isinstance(value, dict):
        return {k: portable_record(v, k) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [portable_record(v, key) for v in value]
    if isinstance(value, str) and _is_machine_path(value):
        return "." if key == "output_dir" else PureWindowsPath(value).name  # either separator
    return value


def init_from(model: torch.nn.Module, path: Path, args, num_classes: int) -> str:
    """Load the weights of the fermonitor checkpoint at ``path`` (--init) into ``model``; returns the
    file's SHA-256."""
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    start, meta = load_checkpoint(path)
    if meta.arch != args.arch:
        raise CheckpointError(f"--init {path} is a {meta.arch} model; this run trains --arch {args.arch}")
    if len(meta.classes) != num_classes:
        raise CheckpointError(f"--init {path} has {len(meta.classes)} outputs; --label-mode {args.label_mode} "
                              f"trains {num_classes}")
    model.load_state_dict(start.state_dict())
    log.info("initialised from %s (SHA-256 %s)", path, digest)
    return digest


def load_teacher(paths: list[Path], args, classes: tuple[str, ...], device: torch.device) -> Teacher:
    """The --teacher checkpoints as one :class:`Teacher`; CheckpointError naming a checkpoint that
    does not fit this run (other classes or face size)."""
    models, norms = [], []
    for path in paths:
        model, meta = load_checkpoint(path)
        if tuple(meta.classes) != tuple(classes):
            raise CheckpointError(f"--teacher {path} has classes {', '.join(meta.classes)}; this run trains "
                                  f"{', '.join(classes)}")
        if meta.input_size != IMAGE_SIDE_PX:
            raise CheckpointError(f"--teacher {path} takes {meta.input_size} px faces; this run trains on "
                                  f"{IMAGE_SIDE_PX} px")
        models.append(model.to(device).to(memory_format=torch.channels_last))
        norms.append((meta.mean, meta.std))
        log.info("teacher %s (%s, valid %s)", path, meta.arch, meta.metrics.get("valid_accuracy", "not recorded"))
    return Teacher(models, norms, args.mean, args.std, flip=args.teacher_flip, amp=args.amp)


def saved_arguments(saved: dict) -> dict:
    """A run's saved arguments, with what options added since meant for it: before --cycle-momentum
    existed, one-cycle always cycled the momentum; before --draw-labels, no run drew its labels."""
    saved = {"draw_labels": False, **saved}
    if "sched" in saved and "cycle_momentum" not in saved:
        return {**saved, "cycle_momentum": saved["sched"] == "onecycle"}
    return saved


def _setting(key: str, value) -> str:
    """One training setting as its command line says it: "--lr 0.1", "--nesterov", "no --nesterov"."""
    option = "--" + key.replace("_", "-")
    if isinstance(value, bool):
        return option if value else f"no {option}"
    return f"{option} {value}"


def resume_from(path: Path, args, model, optimizer, scaler, device: torch.device, train_faces: int,
                ranks: distributed.Ranks = distributed.ONE_PROCESS) -> tuple[int, float, dict | None, str | None]:
    """Load ``path`` (last.pth) into model, optimizer and loss scaler and restore torch's random
    state (dropout; each rank's own where the run had as many processes as ``ranks``); returns the
    epoch to train next, the best validation accuracy so far, how far the stopped epoch had come
    when this run trains it (else None) and the SHA-256 of the run's --init checkpoint (None
    without one)."""
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # a torn or foreign file can fail anywhere in the unpickler
        raise CheckpointError(f"--resume: {path} is not a readable training state ({exc})") from exc
    saved = saved_arguments(state.get("args", {}) if isinstance(state, dict) else {})
    within = state.get("within") if isinstance(state, dict) else None
    if within and int(state["epoch"]) + 1 >= args.epochs:  # a smaller --epochs budget: that epoch is not trained
        within = None
    for key in RESUME_FIXED + (MID_EPOCH_FIXED if within else ()):
        if key in saved and saved[key] != getattr(args, key):
            raise CheckpointError(f"--resume: {path} was trained with {_setting(key, saved[key])}, this run asks for "
                                  f"{_setting(key, getattr(args, key))}; keep it or use another --output-dir")
    if within and within.get("faces", train_faces) != train_faces:
        raise CheckpointError(f"--resume: {path} stopped inside an epoch of {within['faces']} training faces, this "
                              f"run has {train_faces}; keep that run's data options or use another --output-dir")
    try:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
    except (KeyError, TypeError, RuntimeError, ValueError) as exc:
        raise CheckpointError(f"--resume: {path} does not fit this model and optimizer ({one_line(exc)})") from exc
    if state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    per_rank = state.get("rng_per_rank") or []
    if len(per_rank) == ranks.world_size:
        torch.set_rng_state(per_rank[ranks.rank].cpu())
    elif "rng" in state and ranks.is_main:
        torch.set_rng_state(state["rng"].cpu())
    if "cuda_rng" in state and device.type == "cuda":
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda_rng"]])
    epoch = int(state["epoch"]) + 1
    if within:
        log.info("resumed from %s inside epoch %d, after %d of its batches", path, epoch + 1, within["step"])
    else:
        log.info("resumed from %s at epoch %d", path, epoch + 1)
    return epoch, float(state["best_valid_acc"]), within, state.get("init_sha256")


def save_training_state(path: Path, state: dict) -> None:
    """Write last.pth whole or not at all: a run stopped while saving keeps the previous one."""
    torch.save(state, path.with_suffix(".tmp"))
    path.with_suffix(".tmp").replace(path)


def start_summary(path: Path, epochs_done: int) -> None:
    """A fresh summary.csv, or on resume the rows of the epochs done: an epoch interrupted after
    its row was written runs again and writes it again."""
    rows = []
    if epochs_done > 0 and path.is_file():
        with open(path, newline="") as f:
            rows = [row for row in list(csv.reader(f))[1:] if row and int(row[0]) <= epochs_done]
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([SUMMARY_FIELDS, *rows])


def score_best(args, test: FaceSplit, device: torch.device, ranks: distributed.Ranks = distributed.ONE_PROCESS) -> dict:
    """Score output-dir/best.pt on the test split with its own normalisation, and on the original
    study's footing (``study_footing``); log the result and write test_metrics.json. Rank 0 scores;
    every rank returns its metrics."""
    if not ranks.is_main:
        return distributed.from_main(None)
    best, meta = load_checkpoint(args.output_dir / "best.pt")
    scoring = argparse.Namespace(**{**vars(args), "mean": meta.mean, "std": meta.std})
    metrics = {**evaluate(best.to(device), test, scoring, device), "votes": args.votes, "faces": len(test)}
    metrics["study_footing"] = study_footing(best, load_study_split(DataPaths.in_folder(args.data_dir), args.votes),
                                             scoring, device)
    log.info("best.pt (epoch %s, valid accuracy %s): test accuracy %.4f, macro-F1 %.4f on %d faces; "
             "on the original study's footing %.4f on %d faces",
             meta.metrics.get("epoch"), meta.metrics.get("valid_accuracy"), metrics["accuracy"], metrics["macro_f1"],
             len(test), metrics["study_footing"]["accuracy"], metrics["study_footing"]["faces"])
    (args.output_dir / "test_metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return distributed.from_main(metrics)


def main(args) -> dict:
    """Train (or with --test-only evaluate output-dir/best.pt) and return the test metrics.

    Started by torchrun (RANK, WORLD_SIZE and LOCAL_RANK set), each process trains its share of
    every batch in a DistributedDataParallel model; rank 0 alone logs, evaluates and writes files.
    """
    ranks = distributed.ranks_from_environment()
    if ranks is None:
        return _train(args, distributed.ONE_PROCESS, None)
    if not ranks.is_main:
        logging.getLogger().setLevel(logging.WARNING)
    if args.batch_size % ranks.world_size:
        raise ValueError(f"--batch-size {args.batch_size} is the batch of all {ranks.world_size} processes together: "
                         f"make it a multiple of {ranks.world_size}")
    device = distributed.start(ranks, pick_device(args.device))
    try:
        return _train(args, ranks, device)
    finally:
        distributed.stop()


def _train(args, ranks: distributed.Ranks, device: torch.device | None) -> dict:
    """:func:`main` once the process group (if any) is up, on its ``device`` (None: --device picks)."""
    if args.soft_targets and args.label_mode != "majority":
        raise ValueError(f"--soft-targets applies to --label-mode majority, not {args.label_mode}")
    if args.draw_labels and not (args.soft_targets or args.label_mode == "probability"):
        raise ValueError(f"--draw-labels draws from vote distributions: add --soft-targets or use --label-mode "
                         f"probability, not {args.label_mode} with one-hot targets")
    if args.cycle_momentum and args.sched != "onecycle":
        raise ValueError(f"--cycle-momentum applies to --sched onecycle, not {args.sched}")
    if args.teacher_flip and not args.teacher:
        raise ValueError("--teacher-flip applies to a run with --teacher")
    device = device if device is not None else pick_device(args.device)
    if args.sync_bn and not (ranks.distributed and device.type == "cuda"):
        raise ValueError("--sync-bn needs torchrun on CUDA GPUs (torch syncs batch norm on GPUs only)")
    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    args.amp = args.amp == "on" or (args.amp == "auto" and reduced_precision_default(device))
    if ranks.is_main:
        args.output_dir.mkdir(parents=True, exist_ok=True)
    splits = prepare_data(args)
    train, valid, test = splits["train"], splits["valid"], splits["test"]
    log.info("train %d, valid %d, test %d faces; device %s", len(train), len(valid), len(test), device)
    if args.votes != "label_csv":
        log.warning("--votes %s: validation and test use those votes too (%d and %d faces), so their figures are "
                    "not on the official FER+ protocol (3,191 and 3,137 faces)", args.votes, len(valid), len(test))
    if args.test_only:
        return score_best(args, test, device, ranks)
    teacher = load_teacher(args.teacher, args, train.classes, device) if args.teacher else None

    model = build_model(args.arch, num_classes=len(train.classes), dropout=args.dropout)
    last_path = args.output_dir / "last.pth"
    resuming = args.resume and last_path.is_file()
    # A resume takes its weights from last.pth; --init may by now name another model.
    init_sha256 = init_from(model, args.init, args, len(train.classes)) if args.init and not resuming else None
    if ranks.rank:  # a dropout stream of its own; the weights all ranks start from are rank 0's (DDP sends them)
        torch.manual_seed(int(np.random.SeedSequence([args.seed, ranks.rank]).generate_state(1)[0]))
    model = model.to(device).to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, args)
    scaler = make_grad_scaler(device, args.amp)
    start_epoch, best_acc, within = 0, -1.0, None
    if resuming:
        start_epoch, best_acc, within, init_sha256 = resume_from(last_path, args, model, optimizer, scaler, device,
                                                                 len(train), ranks)
    net = model  # what is saved and evaluated; ``model`` is what trains
    if ranks.distributed:
        if args.sync_bn:
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
        if args.save_minutes and ranks.is_main:
            log.info("%d processes: last.pth is saved at the end of each epoch only (--save-minutes applies to one "
                     "process)", ranks.world_size)
        args.save_minutes = 0.0
    steps_per_epoch = (len(train) + args.batch_size - 1) // args.batch_size
    steps_done = min(start_epoch, args.epochs) * steps_per_epoch + (within["step"] if within else 0)
    scheduler = make_scheduler(optimizer, args, steps_per_epoch, steps_done)
    summary_path = args.output_dir / "summary.csv"
    if ranks.is_main:
        (args.output_dir / "test_metrics.json").unlink(missing_ok=True)  # an earlier run's, in this folder
        (args.output_dir / "args.json").write_text(json.dumps(args_dict(args), indent=2) + "\n")
        start_summary(summary_path, start_epoch)

    def training_state(epoch_done: int, rng_per_rank: list[torch.Tensor] | None = None) -> dict:
        state = {"model": net.state_dict(), "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
                 "epoch": epoch_done, "best_valid_acc": best_acc, "args": args_dict(args),
                 "rng": torch.get_rng_state(), "init_sha256": init_sha256}
        if device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state_all()
        if rng_per_rank is not None:
            state["rng_per_rank"] = rng_per_rank
        return state

    last_save = time.monotonic()

    def save_inside_epoch(epoch: int, lr: float, started: float, done: EpochProgress) -> None:
        """After a batch of ``epoch``: save last.pth when --save-minutes have passed since the last save."""
        nonlocal last_save
        if args.save_minutes and done.step < steps_per_epoch and \
                time.monotonic() - last_save >= args.save_minutes * 60:
            state = training_state(epoch - 1)
            state["within"] = {**done.to_dict(), "lr": lr, "seconds": time.perf_counter() - started,
                               "faces": len(train)}
            save_training_state(last_path, state)
            last_save = time.monotonic()

    for epoch in range(start_epoch, args.epochs):
        lr = within["lr"] if within else optimizer.param_groups[0]["lr"]
        started = time.perf_counter() - (within["seconds"] if within else 0.0)
        progress = None
        if args.progress and ranks.is_main:
            from tqdm import tqdm

            progress = tqdm(total=len(train), desc=f"epoch {epoch + 1}/{args.epochs}", unit="img", leave=False)
        start = EpochProgress.from_dict(within) if within else None
        within = None
        if start is not None and ranks.rank:  # the saved sums and augmentation state are rank 0's
            start = EpochProgress(step=start.step)
        stats = train_one_epoch(model, train, optimizer, scheduler, args, device, epoch, progress, scaler=scaler,
                                start=start, after_step=functools.partial(save_inside_epoch, epoch, lr, started),
                                rank=ranks.rank, world_size=ranks.world_size, teacher=teacher)
        if progress is not None:
            progress.close()
        # Every rank's dropout stream, for last.pth (a collective: all ranks take part).
        rng_per_rank = distributed.gathered(torch.get_rng_state()) if ranks.distributed else None
        if not ranks.is_main:
            distributed.from_main(None)  # wait for rank 0's evaluation and files
            continue
        valid_metrics = evaluate(net, valid, args, device)
        seconds = time.perf_counter() - started
        row = {"epoch": epoch + 1, "lr": lr, **stats, "valid_loss": valid_metrics["loss"],
               "valid_acc": valid_metrics["accuracy"], "valid_macro_f1": valid_metrics["macro_f1"], "seconds": seconds}
        with open(summary_path, "a", newline="") as f:
            csv.writer(f).writerow([f"{row[k]:.5g}" if isinstance(row[k], float) else row[k] for k in SUMMARY_FIELDS])
        log.info("epoch %d: %s", epoch + 1, {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()})
        meta = meta_for(args, train.classes, {"epoch": epoch + 1, "valid_accuracy": valid_metrics["accuracy"],
                                              "valid_macro_f1": valid_metrics["macro_f1"]}, init_sha256)
        if valid_metrics["accuracy"] > best_acc:
            best_acc = valid_metrics["accuracy"]
            save_checkpoint(args.output_dir / "best.pt", net, meta, half=False)
        if args.keep_epochs:
            save_checkpoint(args.output_dir / f"epoch{epoch + 1:03d}.pt", net, meta, half=False)
        save_training_state(last_path, training_state(epoch, rng_per_rank))
        last_save = time.monotonic()
        if ranks.distributed:
            distributed.from_main(None)  # the other ranks go on

    return score_best(args, test, device, ranks)
