"""The process group: one process runs as a world of one (gloo on CPU, NCCL on GPU), so the FSDP code
path is the same on a laptop as under ``torchrun`` on a cluster."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class World:
    rank: int
    size: int
    device: object  # torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup() -> World:
    """Join (or, outside ``torchrun``, create) the default process group and pick this rank's device."""
    import torch
    import torch.distributed as dist

    if "RANK" not in os.environ:  # a world of one, so the FSDP path is the same as under torchrun
        os.environ.update({"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1"})
        if "MASTER_PORT" not in os.environ:
            import socket

            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                os.environ["MASTER_PORT"] = str(s.getsockname()[1])
    cuda = torch.cuda.is_available()
    local = int(os.environ["LOCAL_RANK"])
    if cuda:
        torch.cuda.set_device(local)
    dist.init_process_group("nccl" if cuda else "gloo")
    device = torch.device(f"cuda:{local}" if cuda else "cpu")
    return World(dist.get_rank(), dist.get_world_size(), device)


def teardown(wait: bool = True) -> None:
    """Wait for every rank (unless leaving on an error), then leave the process group."""
    import torch.distributed as dist

    if wait:
        dist.barrier()
    dist.destroy_process_group()
