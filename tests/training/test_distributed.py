"""Training on several processes (torchrun's environment) with gloo on the CPU: the same steps as one process."""

from __future__ import annotations

import csv
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from training_helpers import NO_BATCH_NORM_ARCH, register_no_batch_norm_model, train_as_rank

from fermonitor.core.checkpoint import load_checkpoint
from fermonitor.core.models import unregister_model
from training import train
from training.data import DataPaths, load_splits
from training.distributed import Ranks, ranks_from_environment
from training.engine import batches, shard_batches

TRAIN_FRACTION = 0.935  # of the small folder's 137 training faces: 128


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _argv(data: Path, out: Path, *extra: str) -> list[str]:
    # No augmentation and no dropout: what is left to chance is the order of the faces, the same in both.
    return ["--data-dir", str(data), "--output-dir", str(out), "--arch", NO_BATCH_NORM_ARCH, "--batch-size", "16",
            "--lr", "0.05", "--sched", "none", "--threads", "1", "--amp", "off", "--no-progress", "--augment", "",
            "--dropout", "0", "--soft-targets", "--train-fraction", str(TRAIN_FRACTION), *extra]


def _summary(run: Path) -> list[dict[str, str]]:
    with open(run / "summary.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture
def no_batch_norm_model():
    register_no_batch_norm_model()
    yield NO_BATCH_NORM_ARCH
    unregister_model(NO_BATCH_NORM_ARCH)


def test_the_ranks_batches_together_are_the_one_process_batches() -> None:
    for n, world in [(37, 2), (64, 4), (50, 2)]:
        one = list(batches(n, 16, np.random.default_rng(3)))
        shards = [list(shard_batches(n, 16, np.random.default_rng(3), rank, world)) for rank in range(world)]
        assert all(len(s) == len(one) for s in shards)  # every rank takes as many steps
        for k, batch in enumerate(one):
            together = np.concatenate([s[k] for s in shards])
            # The padding (DistributedSampler's) repeats the first faces of the epoch in the last batch only.
            assert set(together) == set(batch) or k == len(one) - 1
            assert set(batch) <= set(together)
    assert ranks_from_environment({}) is None
    assert ranks_from_environment({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}) == Ranks(1, 2, 1)
    with pytest.raises(ValueError, match="LOCAL_RANK"):
        ranks_from_environment({"RANK": "0", "WORLD_SIZE": "2"})
    with pytest.raises(ValueError, match="not below WORLD_SIZE"):
        ranks_from_environment({"RANK": "2", "WORLD_SIZE": "2", "LOCAL_RANK": "0"})


def test_two_processes_train_as_one_on_the_same_global_batch_and_resume(
        small_data: Path, isolated_cache: Path, tmp_path: Path, one_thread: None, no_batch_norm_model: str) -> None:
    faces = len(load_splits(DataPaths.in_folder(small_data), soft_targets=True)["train"])
    assert int(faces * TRAIN_FRACTION) == 128, faces  # 8 batches of 16: no padding, every face once in both runs
    one = tmp_path / "one"
    train.main(train.get_args_parser().parse_args(_argv(small_data, one, "--epochs", "2")))

    two, rank1_dir = tmp_path / "two", tmp_path / "rank1"
    # Rank 1 is told another folder: anything it wrote would land there (it writes nothing).
    first = [_argv(small_data, two, "--epochs", "1"), _argv(small_data, rank1_dir, "--epochs", "1")]
    mp.spawn(train_as_rank, args=(2, _free_port(), first), nprocs=2)
    assert not rank1_dir.exists()
    assert {p.name for p in two.iterdir()} == {"args.json", "summary.csv", "best.pt", "last.pth", "test_metrics.json"}
    # The second epoch with --resume from the first's last.pth (both ranks read it).
    second = [_argv(small_data, two, "--epochs", "2", "--resume")] * 2
    mp.spawn(train_as_rank, args=(2, _free_port(), second), nprocs=2)

    rows_one, rows_two = _summary(one), _summary(two)
    assert [r["epoch"] for r in rows_two] == ["1", "2"]
    for a, b in zip(rows_one, rows_two, strict=True):
        for key in ("train_loss", "train_acc", "valid_loss", "valid_acc"):
            assert float(b[key]) == pytest.approx(float(a[key]), rel=1e-3, abs=1e-4), (key, a, b)
    weights_one = torch.load(one / "last.pth", weights_only=True)["model"]
    weights_two = torch.load(two / "last.pth", weights_only=True)["model"]
    for name, value in weights_one.items():
        torch.testing.assert_close(weights_two[name], value, atol=1e-5, rtol=1e-4)
    model, meta = load_checkpoint(two / "best.pt")
    assert meta.arch == NO_BATCH_NORM_ARCH and meta.metrics["epoch"] in (1, 2)


def test_torchrun_trains_a_batch_norm_model_with_rank_zero_writing(small_data: Path, isolated_cache: Path,
                                                                   tmp_path: Path) -> None:
    run = tmp_path / "run"
    argv = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
            str(_free_port()), "-m", "training", "train", "--data-dir", str(small_data), "--output-dir", str(run),
            "--arch", "seed_resnet34", "--batch-size", "16", "--epochs", "1", "--threads", "1", "--amp", "off",
            "--no-progress", "--augment", "flip,crop", "--train-fraction", "0.5"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=280, cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.count("epoch 1:") == 1  # rank 0 alone logs
    assert {p.name for p in run.iterdir()} == {"args.json", "summary.csv", "best.pt", "last.pth", "test_metrics.json"}
    assert len(_summary(run)) == 1
