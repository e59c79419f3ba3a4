"""Constants and helpers shared by the training tests."""

from __future__ import annotations

import pytest
from shared_data import DATA_DIR

# Rows kept from the start of each Usage block of fer2013.csv / fer2013new.csv.
ROWS_PER_USAGE = {"Training": 160, "PublicTest": 64, "PrivateTest": 64}
FOLDERS = {"Training": "FER2013Train", "PublicTest": "FER2013Valid", "PrivateTest": "FER2013Test"}


def need_data() -> None:
    if not (DATA_DIR / "fer2013.csv.gz").is_file() or not (DATA_DIR / "ferplus").is_dir():
        pytest.skip(f"real FER+ data not found in {DATA_DIR} (fer2013.csv.gz, fer2013new.csv, ferplus/)")


# A model without batch norm, registered by the distributed tests: batch norm on a CPU normalises
# each process's share of a batch on its own (torch syncs it on GPUs only), so only a model without
# it trains the same in one process and in several.
NO_BATCH_NORM_ARCH = "test_mlp"


def register_no_batch_norm_model() -> None:
    import torch
    from torch import nn

    from fermonitor.core.models import list_models, register_model

    if NO_BATCH_NORM_ARCH in list_models():
        return

    @register_model(NO_BATCH_NORM_ARCH)
    def _mlp(num_classes: int = 8, dropout: float = 0.0) -> nn.Module:
        torch.manual_seed(0)  # the same first weights in every process and run
        return nn.Sequential(nn.Flatten(), nn.Linear(48 * 48, 32), nn.ReLU(), nn.Dropout(dropout),
                             nn.Linear(32, num_classes))


def train_as_rank(rank: int, world_size: int, port: int, argv_per_rank: list[list[str]]) -> None:
    """One process of a ``world_size``-process training run, as torchrun would start it (spawned)."""
    import os

    import torch

    from training import train

    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    register_no_batch_norm_model()
    train.main(train.get_args_parser().parse_args(argv_per_rank[rank]))
