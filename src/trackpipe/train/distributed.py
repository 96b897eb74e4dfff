"""Data-parallel training under torchrun (WORLD_SIZE > 1): NCCL on GPUs, gloo on CPU.

Each rank takes every world_size-th batch of the shared epoch plan (the plan is a function of seed and
epoch, so all ranks agree on it without communication); statistics are summed over ranks; rank 0
writes every file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device) -> DistInfo:
    world = int(os.environ.get("WORLD_SIZE", 1))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size())


def shard(batches: list, info: DistInfo) -> list:
    """This rank's batches; every rank gets the same count so collective calls stay in step."""
    if not info.active:
        return batches
    per_rank = len(batches) // info.world_size
    return batches[info.rank::info.world_size][:per_rank]


def sum_stats(stats: dict, info: DistInfo, device) -> dict:
    if not info.active:
        return stats
    keys = sorted(stats)
    t = torch.tensor([stats[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return dict(zip(keys, t.tolist()))


def any_rank(flag: bool, info: DistInfo, device) -> bool:
    if not info.active:
        return flag
    t = torch.tensor([int(flag)], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def barrier(info: DistInfo) -> None:
    if info.active:
        dist.barrier()
