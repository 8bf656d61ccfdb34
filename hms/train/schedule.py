"""Learning-rate schedules, stepped once per optimizer step (not per epoch, not forgotten).

Every schedule gets the plan of the run: `total_steps` and `epoch_steps` (optimizer steps of each epoch),
so that a per-epoch schedule is a per-step one that holds its value through each epoch.
"""
import math

import numpy as np
from torch.optim.lr_scheduler import LambdaLR


def cosine_with_warmup(optimizer, total_steps: int, epoch_steps=None, warmup_fraction: float = 0.05,
                       min_lr_ratio: float = 0.0, warmup_start_ratio: float | None = None) -> LambdaLR:
    """Linear warm-up over the first warmup_fraction of steps, then cosine down to min_lr_ratio x lr.
    The warm-up climbs (step + 1) / warmup, or linearly from warmup_start_ratio at step 0 to 1 at the end
    of the warm-up (the 16th place: 0.1 -> 1 over 10 %, then cosine to 0.01)."""
    warmup = int(round(warmup_fraction * total_steps))

    def factor(step: int) -> float:
        if step < warmup and warmup_start_ratio is not None:
            return warmup_start_ratio + (1 - warmup_start_ratio) * step / warmup
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return LambdaLR(optimizer, factor)


def cosine_per_epoch(optimizer, total_steps: int, epoch_steps, t_max: int, eta_min: float) -> LambdaLR:
    """torch's CosineAnnealingLR(T_max=t_max, eta_min) stepped once per epoch, no warm-up (15th place):
    lr of epoch e = eta_min + (lr - eta_min) (1 + cos(pi e / t_max)) / 2, the same for all its steps."""
    ends = np.cumsum(epoch_steps)
    base = [group["lr"] for group in optimizer.param_groups]

    def factors(i: int):
        def factor(step: int) -> float:
            epoch = int(np.searchsorted(ends, step, side="right"))
            lr = eta_min + (base[i] - eta_min) * (1 + math.cos(math.pi * epoch / t_max)) / 2
            return lr / base[i] if base[i] else 0.0
        return factor

    return LambdaLR(optimizer, [factors(i) for i in range(len(base))])
