"""Many processes under ``torchrun``: the process group, and what the ranks say to each other.

``torchrun --nproc_per_node K [--nnodes N ...] -m snapcap ...`` starts K processes per machine
with ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` set. :func:`distributed_context` joins the
process group they form (NCCL on CUDA, gloo on the CPU); run alone, it returns a context of one
process and every helper below does nothing (or returns its argument), so code written for many
processes runs unchanged in one.

Rank 0 is the main process: it alone writes files that every rank reads (checkpoints, caches,
reports); the others wait for it at a :meth:`DistributedContext.barrier`.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any

import torch.distributed as dist

from snapcap.errors import ConfigError

__all__ = ["DistributedContext", "distributed_context", "finish", "process_device", "TIMEOUT_ENV"]

TIMEOUT_ENV = "SNAPCAP_DIST_TIMEOUT_S"
"""Seconds a rank waits for the others at a collective (default 6 hours: rank 0 may simulate a
corpus or train a model alone while the others wait)."""


@dataclass
class DistributedContext:
    """This process's place in a torchrun job (rank 0 of 1 when run alone)."""

    rank: int = 0
    world: int = 1
    active: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        """Wait until every rank is here."""
        if self.active:
            dist.barrier()

    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank (a picklable object)."""
        if not self.active:
            return value
        box = [value if self.main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, value: Any) -> list[Any] | None:
        """Every rank's ``value``, in rank order, on rank 0 (``None`` on the others)."""
        if not self.active:
            return [value]
        box = [None] * self.world if self.main else None
        dist.gather_object(value, box, dst=0)
        return box

    def shard(self, count: int) -> range:
        """The indices of ``count`` items this rank handles: ``rank, rank + world, ...``."""
        return range(self.rank, count, self.world) if self.active else range(count)


def finish() -> None:
    """Leave the process group, if this process joined one: every rank waits for the others,
    then the group is destroyed (a rank that exits while its peers still talk to it can abort
    the job)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def _timeout() -> datetime.timedelta:
    text = os.environ.get(TIMEOUT_ENV, "21600")
    try:
        seconds = float(text)
    except ValueError:
        raise ConfigError(f"{TIMEOUT_ENV}={text!r}: expected a number of seconds") from None
    if seconds <= 0:
        raise ConfigError(f"{TIMEOUT_ENV}={text!r}: expected a positive number of seconds")
    return datetime.timedelta(seconds=seconds)


def process_device(device: str) -> str:
    """``cuda`` under torchrun is this process's GPU, ``cuda:LOCAL_RANK``; anything else as it is."""
    if device == "cuda" and "LOCAL_RANK" in os.environ:
        return f"cuda:{int(os.environ['LOCAL_RANK'])}"
    return device


def distributed_context(device: str = "cpu") -> DistributedContext:
    """Join the process group torchrun set up (``WORLD_SIZE`` > 1), or run alone.

    On CUDA each process first makes ``cuda:LOCAL_RANK`` its current device: NCCL's collectives
    run there, and so does everything placed on plain ``cuda`` (the device a run names and its
    cache keys record), so K processes on one machine use K GPUs.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistributedContext()
    if str(device).startswith("cuda") and "LOCAL_RANK" in os.environ:
        import torch

        torch.cuda.set_device(torch.device(process_device(str(device))))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if str(device).startswith("cuda") else "gloo", timeout=_timeout())
    return DistributedContext(rank=dist.get_rank(), world=dist.get_world_size(), active=True)
