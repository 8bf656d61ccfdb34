"""DistributedDataParallel in a few lines: torchrun sets RANK/WORLD_SIZE, we pick the backend."""
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def on(self) -> bool:
        return self.world > 1


def setup(device: str = "auto") -> Dist:
    """Join the process group when launched by torchrun (nccl on GPU, gloo on CPU); else one process."""
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("trainer.device=cuda, but no CUDA GPU is visible: trainer.device=auto (or cpu) runs here")
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Dist(device=torch.device("cuda" if use_cuda else "cpu"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local_rank)
    dist.init_process_group("nccl" if use_cuda else "gloo")
    dev = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    return Dist(rank=dist.get_rank(), world=world, device=dev)


def barrier(d: Dist) -> None:
    if d.on:
        dist.barrier()


def any_true(d: Dist, flag: bool) -> bool:
    """True on every rank when any rank saw the flag (so all ranks stop together)."""
    if not d.on:
        return flag
    t = torch.tensor([float(flag)], device=d.device)
    dist.all_reduce(t)
    return bool(t.item() > 0)


def gather(d: Dist, obj):
    """All ranks' objects as a list (rank order); [obj] in one process."""
    if not d.on:
        return [obj]
    out = [None] * d.world
    dist.all_gather_object(out, obj)
    return out


def teardown(d: Dist) -> None:
    if d.on:
        dist.destroy_process_group()
