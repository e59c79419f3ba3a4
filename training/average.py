"""python -m training average: one model from the mean of several checkpoints' weights.

Averaging the weights of a run's last epochs (stochastic weight averaging, Izmailov et al. 2018)
lands nearer the middle of a flat minimum than any one epoch, and costs nothing at inference: the
result is one VGG19 of the same size. With ``--weights``, the mean is weighted: the shipped model
and a fine-tune of it, interpolated in weight space, can keep the one's accuracy on its own data and
gain some of the other's robustness elsewhere (WiSE-FT, Wortsman et al. 2022). The mean of
batch-norm statistics is not the statistics of the mean weights, so they are measured again on the
training faces (no augmentation) before the averaged model is scored on the validation split.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import nn

from fermonitor.core.checkpoint import ModelMeta, load_checkpoint, save_checkpoint
from fermonitor.core.device import pick_device, reduced_precision_default
from training.data import DataPaths, FaceSplit, load_splits
from training.engine import autocast_for, batches, evaluate, to_input
from training.evaluate_cli import format_report
from training.train import (
    DEFAULT_DATA_DIR,
    non_negative_float,
    non_negative_int,
    portable_record,
    positive_int,
    recorded_path,
)

log = logging.getLogger(__name__)

# Fields that must agree for two checkpoints' weights to be averaged.
MATCHING_FIELDS = ("arch", "classes", "input_size", "mean", "std")


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Average the weights of checkpoints of one architecture",
                                add_help=add_help)
    p.add_argument("--checkpoints", type=Path, nargs="+", required=True,
                   help="two or more fermonitor checkpoints (.pt), e.g. a run's epochNNN.pt files")
    p.add_argument("--weights", type=non_negative_float, nargs="+", default=None,
                   help="one weight per checkpoint, in their order (scaled to sum to 1); default: equal")
    p.add_argument("--output", type=Path, required=True, help="where to write the averaged checkpoint (fp32)")
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                   help="FER+ data: training faces for batch-norm statistics, validation faces for the score")
    p.add_argument("--batch-size", type=positive_int, default=256, help="faces per forward pass for batch-norm statistics")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, mps")
    p.add_argument("--threads", type=non_negative_int, default=0, help="CPU threads (0: torch's default)")
    p.add_argument("--amp", default="auto", choices=["auto", "on", "off"],
                   help="bf16/fp16 autocast (auto: on where the hardware runs it natively)")
    return p


def load_matching(paths: list[Path]) -> tuple[list[nn.Module], ModelMeta]:
    """Load ``paths``; raise ValueError naming the first checkpoint that differs from the first one."""
    if len(paths) < 2:
        raise ValueError(f"average needs two or more checkpoints, got {len(paths)}")
    models, metas = zip(*(load_checkpoint(path) for path in paths), strict=True)
    for path, meta in zip(paths[1:], metas[1:], strict=True):
        for name in MATCHING_FIELDS:
            if getattr(meta, name) != getattr(metas[0], name):
                raise ValueError(f"checkpoint {path} has {name} {getattr(meta, name)!r}, but {paths[0]} has "
                                 f"{getattr(metas[0], name)!r}: only checkpoints of one model can be averaged")
    return list(models), metas[0]


def mixing_weights(weights: list[float] | None, count: int) -> torch.Tensor:
    """``weights`` scaled to sum to 1 (None: equal); ValueError when they do not fit ``count`` checkpoints."""
    if weights is None:
        return torch.full((count,), 1.0 / count, dtype=torch.float64)
    if len(weights) != count:
        raise ValueError(f"--weights has {len(weights)} values for {count} checkpoints: give one per checkpoint")
    if sum(weights) <= 0:
        raise ValueError(f"--weights {' '.join(map(str, weights))} sum to 0: at least one must be above 0")
    weights = torch.tensor(weights, dtype=torch.float64)
    return weights / weights.sum()


def average_weights(models: list[nn.Module], weights: torch.Tensor) -> dict[str, torch.Tensor]:
    """The element-wise mean of every floating-point tensor, ``weights`` (:func:`mixing_weights`) per
    model; counters come from the first model."""
    states = [model.state_dict() for model in models]

    def mean(key: str) -> torch.Tensor:
        stacked = torch.stack([state[key].double() for state in states])
        return torch.tensordot(weights, stacked, dims=1).to(states[0][key].dtype)

    return {key: mean(key) if value.is_floating_point() else value for key, value in states[0].items()}


def recompute_batch_norm(model: nn.Module, faces: FaceSplit, mean: float, std: float, device: torch.device,
                         amp: bool, batch_size: int) -> None:
    """Set every batch-norm layer's running statistics to their exact mean over ``faces``."""
    inputs = (to_input(faces.images[index], mean, std, device) for index in batches(len(faces), batch_size, None))
    with autocast_for(device, amp):
        torch.optim.swa_utils.update_bn(inputs, model)  # keeps the model's train/eval mode


def main(args) -> dict:
    """Average ``args.checkpoints``, re-measure batch norm, score on validation, write ``args.output``."""
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    amp = args.amp == "on" or (args.amp == "auto" and reduced_precision_default(device))
    models, meta = load_matching(list(args.checkpoints))
    weights = mixing_weights(args.weights, len(models))
    model = models[0]
    model.load_state_dict(average_weights(models, weights))
    del models[1:]
    splits = load_splits(DataPaths.in_folder(args.data_dir))
    model = model.to(device).to(memory_format=torch.channels_last)
    recompute_batch_norm(model, splits["train"], meta.mean, meta.std, device, amp, args.batch_size)
    metrics = evaluate(model, splits["valid"], SimpleNamespace(mean=meta.mean, std=meta.std, amp=amp), device)
    # By their place beside the output (a run's epochNNN.pt files) or their names, never where they lay.
    sources = [recorded_path(path, args.output.parent) for path in args.checkpoints]
    title = f"mean of {len(sources)} checkpoints" if args.weights is None else \
        "mean of " + ", ".join(f"{w:.3g} x {source}" for w, source in zip(weights.tolist(), sources, strict=True))
    sys.stdout.write(format_report(metrics, meta.classes[: len(splits["valid"].classes)],
                                   f"{title} on FER2013Valid (PublicTest)") + "\n")
    record = {"averaged_from": sources}
    if args.weights is not None:
        record["averaged_weights"] = [round(w, 6) for w in weights.tolist()]
    averaged = ModelMeta(
        arch=meta.arch, classes=meta.classes, input_size=meta.input_size, mean=meta.mean, std=meta.std,
        crop_margin=meta.crop_margin,
        metrics={"valid_accuracy": metrics["accuracy"], "valid_macro_f1": metrics["macro_f1"], **record},
        train_args={**portable_record(meta.train_args), **record},
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(args.output, model, averaged, half=False)
    log.info("averaged checkpoint written to %s (valid %.4f)", args.output, metrics["accuracy"])
    return metrics
