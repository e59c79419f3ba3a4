"""The original study's model comparison on the official FER+ protocol, under a stated budget.

Every run is ``training.train.main`` with arguments parsed by its own parser, so a row of the
results table can be reproduced with ``python -m training train`` and the arguments shown.
Checkpoints stay in a work folder outside the repository; the table, curves, confusion matrices,
summary CSVs and test metrics go to ``--output-dir`` (training/results/).
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from fermonitor.core.checkpoint import FERPLUS_CLASSES
from training import train
from training.data import DataPaths, load_splits

log = logging.getLogger(__name__)


class RunsFailedError(ValueError):
    """Some comparison runs exited with an error; the message names each run and its log (a
    ValueError, like the project's other errors, so the command line reports it in one line)."""


# The original study's training recipe: torchvision models, 10 outputs (argmax of all vote
# columns), SGD with momentum 0.5, batch 32, constant learning rate, no weight decay, no augmentation.
# Precision is left to --amp auto: fp32 on CPUs without native bf16; bf16 autocast on CPUs with it
# and on CUDA (fp16 with loss scaling on GPUs without bf16).
SEED_RECIPE = ["--label-mode", "argmax10", "--opt", "sgd", "--momentum", "0.5", "--batch-size", "32",
               "--sched", "none", "--weight-decay", "0"]
# Our recipe for the 48x48 batch-norm models: the shipping run's (see training/README.md).
# Its momentum cycles with the one-cycle schedule (0.95-0.85), as in the published runs.
ADAPTED_RECIPE = ["--label-mode", "majority", "--soft-targets", "--opt", "sgd", "--lr", "0.05", "--momentum", "0.9",
                  "--nesterov", "--weight-decay", "5e-4", "--sched", "onecycle", "--cycle-momentum",
                  "--batch-size", "64", "--augment", "flip,crop"]


@dataclass(frozen=True)
class Run:
    """One row of the comparison: a name, what it tests, the original study's figure and its arguments."""

    name: str
    description: str
    original_percent: float | None
    arguments: tuple[str, ...]


def _seed(arch: str, *extra: str, lr: str = "0.01") -> tuple[str, ...]:
    return ("--arch", arch, *SEED_RECIPE, "--lr", lr, *extra)


# In priority order: the study's own rows first, our adapted models after them.
GRID: tuple[Run, ...] = (
    Run("seed_vgg19", "VGG19, SGD lr 0.01", 76.3, _seed("seed_vgg19")),
    Run("seed_vgg16", "VGG16, SGD lr 0.01", 75.0, _seed("seed_vgg16")),
    Run("seed_resnet34", "ResNet34, SGD lr 0.01", 69.5, _seed("seed_resnet34")),
    Run("seed_resnet50", "ResNet50, SGD lr 0.01", 66.6, _seed("seed_resnet50")),
    Run("seed_vgg19_adam_lr0.01", "VGG19, Adam lr 0.01", 37.3,
        ("--arch", "seed_vgg19", *SEED_RECIPE, "--opt", "adam", "--lr", "0.01")),
    Run("seed_vgg16_sgd_lr0.001", "VGG16, SGD lr 0.001", 65.6, _seed("seed_vgg16", lr="0.001")),
    Run("seed_vgg19_sgd_lr0.001", "VGG19, SGD lr 0.001", 69.2, _seed("seed_vgg19", lr="0.001")),
    Run("seed_vgg19_sgd_lr0.1", "VGG19, SGD lr 0.1", 37.3, _seed("seed_vgg19", lr="0.1")),
    Run("seed_vgg19_dropout0.5", "VGG19, SGD lr 0.01, dropout 0.5", 74.6, _seed("seed_vgg19", "--dropout", "0.5")),
    Run("seed_vgg16_offline_triple", "VGG16, SGD lr 0.01, flip/rotate-tripled training data", 73.9,
        _seed("seed_vgg16", "--offline-triple")),
    Run("vgg19", "ours: VGG19-BN 48x48, soft targets, flip+crop", None, ("--arch", "vgg19", *ADAPTED_RECIPE)),
    Run("vgg16", "ours: VGG16-BN 48x48, soft targets, flip+crop", None, ("--arch", "vgg16", *ADAPTED_RECIPE)),
    Run("resnet34", "ours: ResNet34 48x48 stem, soft targets, flip+crop", None, ("--arch", "resnet34", *ADAPTED_RECIPE)),
    Run("resnet50", "ours: ResNet50 48x48 stem, soft targets, flip+crop", None, ("--arch", "resnet50", *ADAPTED_RECIPE)),
)

# test_metrics.json marks a run as finished, so it is copied last.
RESULT_FILES = ("summary.csv", "args.json", "test_metrics.json")


def default_work_dir() -> Path:
    """Checkpoints of the comparison runs: the user cache folder, never the repository."""
    return Path(platformdirs.user_cache_dir("fermonitor")) / "compare"


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Run the original study's model comparison on FER+", add_help=add_help)
    p.add_argument("--budget-epochs", type=train.positive_int, default=10, help="epochs per run (the original study: 10)")
    p.add_argument("--train-fraction", type=train.fraction, default=1.0, help="share of the training split per run")
    p.add_argument("--eval-fraction", type=train.fraction, default=1.0,
                   help="share of valid and test scored (a fixed subset shared by every run)")
    p.add_argument("--only", type=lambda s: [n for n in s.split(",") if n], default=None,
                   help="comma list of run names (default: the whole grid)")
    p.add_argument("--output-dir", type=Path, default=Path("training/results"),
                   help="table, PNGs, summary CSVs and test metrics")
    p.add_argument("--work-dir", type=Path, default=None, help="checkpoints (default: user cache folder)")
    p.add_argument("--data-dir", type=Path, default=train.DEFAULT_DATA_DIR)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=train.non_negative_int, default=0, help="CPU threads per run (0: torch's default)")
    p.add_argument("--seed", type=train.non_negative_int, default=0)
    p.add_argument("--jobs", type=train.positive_int, default=1,
                   help="runs trained at once, each in its own process (a GPU has room for many small runs)")
    p.add_argument("--list", action="store_true", help="print the grid and exit")
    p.add_argument("--table-only", action="store_true",
                   help="rewrite the table from the runs published in --output-dir (budget as given) and exit")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    return p


def select_runs(names: list[str] | None) -> list[Run]:
    """The grid, or the named runs in grid order; an unknown name is an error."""
    if not names:
        return list(GRID)
    known = {run.name for run in GRID}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"--only names unknown runs {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return [run for run in GRID if run.name in names]


def run_arguments(run: Run, args, work_dir: Path) -> list[str]:
    """The ``python -m training train`` arguments of one run under the comparison's budget."""
    argv = [*run.arguments, "--epochs", str(args.budget_epochs), "--train-fraction", str(args.train_fraction),
            "--eval-fraction", str(args.eval_fraction), "--data-dir", str(args.data_dir), "--device", args.device,
            "--threads", str(args.threads), "--seed", str(args.seed), "--output-dir", str(work_dir / run.name)]
    if not args.progress:
        argv.append("--no-progress")
    return argv


def train_arguments(run: Run, args, work_dir: Path) -> argparse.Namespace:
    """The parsed ``train`` arguments of one run under the comparison's budget."""
    return train.get_args_parser().parse_args(run_arguments(run, args, work_dir))


def same_arguments(run_dir: Path, wanted: dict) -> bool:
    """Whether the run in ``run_dir`` was started with the arguments ``wanted`` (train.args_dict form)."""
    if not (run_dir / "args.json").is_file():
        return False
    done = train.saved_arguments(json.loads((run_dir / "args.json").read_text()))
    # A run recorded before an option existed lacks it and ran as that option's default does.
    defaults = train.args_dict(train.get_args_parser().parse_args([]))
    # Settings that do not change what a run computes: keep_epochs only keeps more files,
    # save_minutes saves more often, the rest say where and how fast it runs.
    keys = set(wanted) - {"resume", "progress", "threads", "device", "data_dir", "output_dir", "amp", "keep_epochs",
                          "save_minutes"}
    return all(done.get(k, defaults.get(k)) == wanted[k] for k in keys)


def is_finished(run_dir: Path, wanted: dict) -> bool:
    """A run is done when its test metrics exist and it was trained with the same arguments."""
    return (run_dir / "test_metrics.json").is_file() and same_arguments(run_dir, wanted)


def execute(run: Run, args, work_dir: Path) -> None:
    """Train and test one run (resuming an interrupted one), then copy its small files out.

    A run already published with the same arguments is skipped; one left in the work folder under
    another budget is trained again from the start.
    """
    run_dir = work_dir / run.name
    argv = run_arguments(run, args, work_dir)
    train_args = train.get_args_parser().parse_args(argv)
    wanted = train.args_dict(train_args)
    if is_finished(args.output_dir / run.name, wanted):
        # Published by an earlier session whose work folder may be gone.
        log.info("%s: already published in %s", run.name, args.output_dir / run.name)
        return
    if is_finished(run_dir, wanted):
        log.info("%s: already finished in %s", run.name, run_dir)
    else:
        if same_arguments(run_dir, wanted) and (run_dir / "last.pth").is_file():
            train_args.resume = True
        elif run_dir.exists():
            log.info("%s: %s holds no run to resume under these arguments; starting again", run.name, run_dir)
            shutil.rmtree(run_dir)
        log.info("%s: python -m training train %s%s", run.name, " ".join(argv), " --resume" if train_args.resume else "")
        started = time.perf_counter()
        train.main(train_args)
        log.info("%s: finished in %.0f s", run.name, time.perf_counter() - started)
    publish(run, run_dir, args.output_dir / run.name)


def publish(run: Run, run_dir: Path, out_dir: Path) -> None:
    """Copy a finished run's summary, arguments and test metrics and draw its PNGs."""
    from training.plots import plot_confusion, plot_curves

    out_dir.mkdir(parents=True, exist_ok=True)
    # Until the new test metrics are in, the folder must not look finished under an older budget.
    (out_dir / "test_metrics.json").unlink(missing_ok=True)
    for name in RESULT_FILES:
        shutil.copyfile(run_dir / name, out_dir / name)
    metrics = json.loads((run_dir / "test_metrics.json").read_text())
    plot_curves(out_dir / "summary.csv", out_dir / "curves.png", title=run.name)
    plot_confusion(metrics["confusion"], FERPLUS_CLASSES, out_dir / "confusion.png",
                   title=f"{run.name}: test accuracy {100 * metrics['accuracy']:.1f}%")


def child_argv(run: Run, args, work_dir: Path) -> list[str]:
    """``python -m training compare`` arguments that run only ``run`` under this comparison's budget."""
    argv = [sys.executable, "-m", "training", "compare", "--only", run.name,
            "--budget-epochs", str(args.budget_epochs), "--train-fraction", str(args.train_fraction),
            "--eval-fraction", str(args.eval_fraction), "--output-dir", str(args.output_dir),
            "--work-dir", str(work_dir), "--data-dir", str(args.data_dir), "--device", args.device,
            "--threads", str(args.threads), "--seed", str(args.seed)]
    return argv if args.progress else [*argv, "--no-progress"]


def execute_in_parallel(runs: list[Run], args, work_dir: Path) -> list[str]:
    """Train ``runs`` in up to ``args.jobs`` processes at once; each logs to work_dir/NAME.log.

    The data is decoded once first, so the processes read the cached arrays. A failed run is
    named with its log after the others finish, and the finished ones stay published.
    """
    load_splits(DataPaths.in_folder(args.data_dir))

    def run_one(run: Run) -> int:
        log_path = work_dir / f"{run.name}.log"
        log.info("%s: started, log in %s", run.name, log_path)
        with open(log_path, "w") as handle:
            code = subprocess.run(child_argv(run, args, work_dir), stdout=handle, stderr=subprocess.STDOUT).returncode
        log.info("%s: %s", run.name, "finished" if code == 0 else f"failed with exit code {code}")
        return code

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        codes = list(pool.map(run_one, runs))
    failed = [f"{run.name} (see {work_dir / f'{run.name}.log'})" for run, code in zip(runs, codes, strict=True) if code]
    if failed:
        write_table(list(GRID), args)
        raise RunsFailedError(f"comparison runs failed: {', '.join(failed)}")
    return [run.name for run in runs]


def majority_class_share(confusion: list[list[int]]) -> tuple[str, float]:
    """The most common true class of a confusion matrix (rows: true) and its share of the faces."""
    counts = [sum(row) for row in confusion]
    top = max(range(len(counts)), key=counts.__getitem__)
    return FERPLUS_CLASSES[top], counts[top] / sum(counts)


def write_table(runs: list[Run], args) -> Path:
    """training/results/README.md: the study's figure beside ours for every run published under this
    comparison's budget (a run published under another budget is listed as not run yet)."""
    out = args.output_dir
    out.mkdir(parents=True, exist_ok=True)  # --table-only before any run was published
    # A published run was trained under this budget, so its epochs and share are the budget's.
    published = [run for run in runs if is_finished(out / run.name, train.args_dict(train_arguments(run, args, out)))]
    lines = [
        "# Model comparison on FER+ (official protocol)",
        "",
        "Written by `python -m training compare`; the exact command is in training/README.md.",
        "",
        f"**Budget of these numbers:** {args.budget_epochs} epoch(s) per run on "
        f"{100 * args.train_fraction:g}% of the training split (seed {args.seed}); scored on "
        + ("the full official test set (FER2013Test label.csv, majority rule, 3,137 faces)"
           if args.eval_fraction >= 1.0 else
           f"a fixed {100 * args.eval_fraction:g}% subset of the official test set (FER2013Test label.csv, "
           "majority rule; the same faces for every run)")
        + ". The original study trained 10 epochs on all of its data.",
        "",
        "The original study's figures are on its own split (PublicTest of data it had tripled before "
        "splitting, argmax-of-10 labels), so they are the reference point, not a like-for-like number. "
        "Models with the `seed_` prefix are built and trained as the study did (torchvision models: VGGs "
        "without batch norm, ResNets with the batch norm torchvision gives them; 10 outputs, scored here on "
        "their 8 emotion outputs); the others are our 48x48 models with batch norm.",
        "",
        "The study's footing: each run's best checkpoint scored as the study scored, on PublicTest "
        "(FER2013Valid, every face) with the argmax of all 10 vote columns as the label, unknown and NF "
        "included (a model with 8 outputs never says them, so those faces count against it). The study "
        "measured on the PublicTest of its tripled data, so the difference is ours minus its figure on "
        "the same labels, not on the same images. PublicTest also chose each run's best epoch (on the "
        "official labels), which favours that column a little; the test column has no such bias.",
        "",
        "| run | what | original study | ours: the study's footing | difference | ours: official test accuracy "
        "| ours: macro-F1 | faces scored | epochs | share of training data | precision |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    baseline = None
    plotted = []
    for run in published:
        metrics = json.loads((out / run.name / "test_metrics.json").read_text())
        baseline = baseline or majority_class_share(metrics["confusion"])
        scored = int(sum(sum(r) for r in metrics["confusion"]))
        original = f"{run.original_percent:.1f}%" if run.original_percent is not None else "n/a"
        footing = metrics.get("study_footing", {}).get("accuracy")  # runs published before it was scored lack it
        footing_text = f"{100 * footing:.1f}%" if footing is not None else "not scored"
        difference = (f"{100 * footing - run.original_percent:+.1f}"
                      if footing is not None and run.original_percent is not None else "")
        # --amp auto picks the precision per machine, so a grid finished across machines can mix them.
        autocast = json.loads((out / run.name / "args.json").read_text())["amp"]
        lines.append(
            f"| [{run.name}]({run.name}/) | {run.description} | {original} | {footing_text} | {difference} | "
            f"{100 * metrics['accuracy']:.1f}% | {100 * metrics['macro_f1']:.1f}% | {scored:,} | {args.budget_epochs} | "
            f"{100 * args.train_fraction:g}% | {'bf16/fp16 autocast' if autocast else 'fp32'} |")
        plotted.append((run.name, 100 * metrics["accuracy"], 100 * footing if footing is not None else None,
                        run.original_percent))
    if baseline is not None:
        lines += ["", f"A model that says {baseline[0]} for every face scores {100 * baseline[1]:.1f}% on these faces: "
                  "runs near that figure have not yet learned more than the most common class."]
    if plotted:
        from training.plots import plot_grid

        plot_grid(plotted, out / "grid.png", title=f"{args.budget_epochs} epochs, {100 * args.train_fraction:g}% "
                                                   "of the training data")
        lines += ["", "![accuracy per run on both footings, the study's figure marked](grid.png)"]
    missing = [run.name for run in runs if run not in published]
    if missing:
        lines += ["", f"Not run yet at this budget: {', '.join(missing)}."]
    lines += ["", "Each run's folder holds curves.png (loss and accuracy per epoch), confusion.png (test set), "
              "summary.csv, args.json and test_metrics.json.", ""]
    path = out / "README.md"
    path.write_text("\n".join(lines))
    return path


def main(args) -> list[str]:
    """Run the selected grid, skipping finished runs; returns the names of the runs published."""
    runs = select_runs(args.only)
    if args.list:
        for run in runs:
            log.info("%s: python -m training train %s", run.name, " ".join(run.arguments))
        return []
    if args.table_only:
        log.info("comparison table: %s", write_table(list(GRID), args))
        return []
    work_dir = args.work_dir or default_work_dir()
    work_dir.mkdir(parents=True, exist_ok=True)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    if args.jobs > 1:
        done = execute_in_parallel(runs, args, work_dir)
        write_table(list(GRID), args)
        log.info("comparison table: %s", args.output_dir / "README.md")
        return done
    done = []
    for run in runs:
        execute(run, args, work_dir)
        done.append(run.name)
        write_table(list(GRID), args)
    log.info("comparison table: %s", args.output_dir / "README.md")
    return done
