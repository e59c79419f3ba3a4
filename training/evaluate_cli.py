"""python -m training evaluate: a checkpoint's official-protocol metrics and confusion matrix.

Given several checkpoints it scores their ensemble (the mean of their logits): how strong a teacher
they would make for distillation, not a model the app runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import torch
from torch import nn

from fermonitor.core.checkpoint import FERPLUS_CLASSES, ModelMeta, load_checkpoint
from fermonitor.core.device import pick_device
from training.data import DataPaths, load_splits
from training.engine import (
    classification_metrics,
    logit_adjustment,
    metrics_from_logits,
    predict_logits,
)
from training.external import read_external
from training.train import DEFAULT_DATA_DIR, non_negative_float, non_negative_int

log = logging.getLogger(__name__)

SPLIT_NAMES = {"test": "FER2013Test (PrivateTest)", "valid": "FER2013Valid (PublicTest)"}


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Score a checkpoint on the official FER+ protocol", add_help=add_help)
    p.add_argument("--checkpoint", type=Path, nargs="+", required=True,
                   help="a fermonitor checkpoint (.pt); several: their ensemble, the mean of their logits")
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                   help="folder with fer2013.csv(.gz), fer2013new.csv and ferplus/")
    p.add_argument("--split", default="test", choices=sorted(SPLIT_NAMES),
                   help="test: label.csv of FER2013Test, majority rule (3,137 faces); valid: FER2013Valid (3,191)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, mps")
    p.add_argument("--threads", type=non_negative_int, default=0, help="CPU threads (0: torch's default)")
    p.add_argument("--tta-flip", action="store_true", help="average the logits of each face and its mirror")
    p.add_argument("--plot", type=Path, default=None, help="also write the confusion matrix as a PNG here")
    p.add_argument("--json", type=Path, default=None, help="also write the metrics as JSON here")
    p.add_argument("--external", type=Path, default=None, metavar="DIR",
                   help="score on this folder-per-class set (e.g. CK+48) instead of a FER+ split; folder names "
                        "map to FER+ classes (happy, sad, ...), other folders are reported and left out")
    p.add_argument("--detect", action="store_true",
                   help="with --external: the largest face the app's detector finds, not the whole image")
    p.add_argument("--prior-shift", type=non_negative_float, default=0.0, metavar="TAU",
                   help="subtract TAU x log(class prior of the FER+ training votes) from the logits first: "
                        "post-hoc logit adjustment, which favours the rare classes (0: none)")
    return p


def format_report(metrics: dict, classes: tuple[str, ...], title: str) -> str:
    """Accuracy, macro-F1, per-class recall and the confusion matrix as plain text."""
    confusion = metrics["confusion"]
    totals = [sum(row) for row in confusion]
    lines = [title, f"faces:     {sum(totals):,}", f"accuracy:  {100 * metrics['accuracy']:.2f}%",
             f"macro-F1:  {100 * metrics['macro_f1']:.2f}%", "", "per-class recall:"]
    width = max(len(c) for c in classes)
    for name, recall, total in zip(classes, metrics["recall"], totals, strict=True):
        lines.append(f"  {name:<{width}}  {100 * recall:6.2f}%  ({total:,} faces)")
    cell = max(width, max(len(str(v)) for row in confusion for v in row)) + 1
    lines += ["", "confusion matrix (rows: true, columns: predicted):",
              " " * (width + 2) + "".join(f"{c:>{cell}}" for c in classes)]
    for name, row in zip(classes, confusion, strict=True):
        lines.append(f"  {name:<{width}}" + "".join(f"{v:>{cell}}" for v in row))
    return "\n".join(lines)


def load_scorable(path: Path) -> tuple[nn.Module, ModelMeta]:
    """The model and description at ``path``; ValueError when FER+ faces cannot be scored with it."""
    model, meta = load_checkpoint(path)
    if tuple(meta.classes[: len(FERPLUS_CLASSES)]) != FERPLUS_CLASSES:
        raise ValueError(f"checkpoint {path} classes {meta.classes} do not start with the FER+ emotions "
                         f"{FERPLUS_CLASSES}")
    if meta.input_size != 48:
        raise ValueError(f"checkpoint {path} expects {meta.input_size}px faces; FER+ faces are 48px")
    return model, meta


def main(args) -> dict:
    """Evaluate ``args.checkpoint`` (or the ensemble of several) on the chosen split, print the report
    and return the metrics."""
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    loaded = [load_scorable(path) for path in args.checkpoint]
    first_classes = loaded[0][1].classes
    for path, (_, meta) in zip(args.checkpoint[1:], loaded[1:], strict=True):
        if meta.classes != first_classes:
            raise ValueError(f"checkpoint {path} has classes {meta.classes}, but {args.checkpoint[0]} has "
                             f"{first_classes}: an ensemble averages the logits of the same classes")
    split = None
    if args.external is not None:
        external = read_external(args.external, detect=args.detect, size=loaded[0][1].input_size)
        images, labels = external.images, external.labels
        where = (f"external set {args.external.name} ({'detected faces' if args.detect else 'whole images'}"
                 + (f"; left out: folders {', '.join(external.unknown_folders)}" if external.unknown_folders else "")
                 + (f"; {len(external.no_face)} images without a face" if external.no_face else "")
                 + (f"; {len(external.unreadable)} unreadable files" if external.unreadable else "") + ")")
    else:
        split = load_splits(DataPaths.in_folder(args.data_dir))[args.split]
        images, labels = split.images, split.labels
        where = f"{SPLIT_NAMES[args.split]}, official majority labels"
    logits = sum(predict_logits(model.to(device), images, meta.mean, meta.std, device, amp=False,
                                tta_flip=args.tta_flip) for model, meta in loaded) / len(loaded)
    if args.prior_shift:
        train = load_splits(DataPaths.in_folder(args.data_dir), soft_targets=True)["train"]
        logits[:, : len(FERPLUS_CLASSES)] -= logit_adjustment(train.targets, args.prior_shift, torch.device("cpu")).numpy()
    metrics = (metrics_from_logits(logits, split) if split is not None else
               classification_metrics(labels, logits[:, :len(FERPLUS_CLASSES)].argmax(1), len(FERPLUS_CLASSES)))
    archs = sorted({meta.arch for _, meta in loaded})
    scored = (f"{args.checkpoint[0]} ({archs[0]})" if len(loaded) == 1 else
              f"the ensemble of {len(loaded)} checkpoints ({', '.join(archs)}: mean logits)")
    title = (f"{scored} on {where}" + (", flip TTA" if args.tta_flip else "")
             + (f", logits shifted by -{args.prior_shift:g} x log(training prior)" if args.prior_shift else ""))
    sys.stdout.write(format_report(metrics, FERPLUS_CLASSES, title) + "\n")
    if args.plot is not None:
        from training.plots import plot_confusion

        plot_confusion(metrics["confusion"], FERPLUS_CLASSES, args.plot,
                       title=f"{'+'.join(archs)} {args.external.name if args.external else args.split}: accuracy {100 * metrics['accuracy']:.2f}%")
        log.info("confusion matrix written to %s", args.plot)
    if args.json is not None:
        args.json.write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics
