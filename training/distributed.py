"""Training on several processes (``torchrun``): the process group, and sums and objects shared by the ranks."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)

# torchrun sets all three in every process it starts; their presence is what makes a run distributed.
TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


@dataclass(frozen=True)
class Ranks:
    """Where this process stands among those of one run: its rank, how many there are, its rank on its machine."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0 logs, evaluates and writes every file of the run."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return dist.is_available() and dist.is_initialized()


ONE_PROCESS = Ranks()


def ranks_from_environment(environ: dict[str, str] | None = None) -> Ranks | None:
    """The ranks torchrun gave this process, or None when it was not started by torchrun."""
    environ = os.environ if environ is None else environ
    present = [name for name in TORCHRUN_VARIABLES if name in environ]
    if not present:
        return None
    if len(present) < len(TORCHRUN_VARIABLES):
        missing = sorted(set(TORCHRUN_VARIABLES) - set(present))
        raise ValueError(f"{', '.join(present)} set but not {', '.join(missing)}: start several processes with "
                         "torchrun, which sets all of them")
    try:
        ranks = Ranks(*(int(environ[name]) for name in TORCHRUN_VARIABLES))
    except ValueError as exc:
        raise ValueError(f"{', '.join(f'{n}={environ[n]!r}' for n in TORCHRUN_VARIABLES)}: not whole numbers") from exc
    if not 0 <= ranks.rank < ranks.world_size or ranks.local_rank < 0:
        raise ValueError(f"RANK {ranks.rank} is not below WORLD_SIZE {ranks.world_size} (or LOCAL_RANK is negative)")
    return ranks


def start(ranks: Ranks, device: torch.device) -> torch.device:
    """Join the run's process group (gloo on CPU, nccl on CUDA); returns this process's device
    (its own GPU, ``cuda:LOCAL_RANK``, on CUDA)."""
    if device.type == "cuda":
        device = torch.device("cuda", ranks.local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    elif device.type == "cpu":
        backend = "gloo"
    else:
        raise ValueError(f"training on several processes runs on CPU (gloo) or CUDA (nccl), not on {device.type}")
    dist.init_process_group(backend, rank=ranks.rank, world_size=ranks.world_size)
    log.info("process group: %s, %d processes", backend, ranks.world_size)
    return device


def stop() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def sum_over_ranks(values: list[float], device: torch.device) -> list[float]:
    """``values`` summed over all ranks (as they are without a process group)."""
    if not (dist.is_available() and dist.is_initialized()):
        return values
    total = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(total)
    return total.tolist()


def from_main(value: Any) -> Any:
    """Rank 0's ``value`` on every rank (``value`` itself without a process group)."""
    if not (dist.is_available() and dist.is_initialized()):
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gathered(value: Any) -> list[Any]:
    """Every rank's ``value``, in rank order, on every rank (``[value]`` without a process group)."""
    if not (dist.is_available() and dist.is_initialized()):
        return [value]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, value)
    return out
