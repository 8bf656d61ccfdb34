"""Learning-rate schedules, stepped once per optimizer step (not per epoch, not forgotten).

Every schedule gets the plan of the run: `total_steps` and `epoch_steps` (optimizer steps of each epoch),
so that a per-epoch schedule is a per-step one that holds its value through each epoch.
"""
import math

import numpy as np
from torch.optim.lr_scheduler import LambdaLR, OneCycleLR


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


class NeverStepped:
    """A scheduler that was built and is never stepped: step() does nothing, so the optimiser keeps what the
    construction set (the Cranjis-McB quirk: its OneCycleLR.step() is never called)."""

    def __init__(self, scheduler):
        self.scheduler = scheduler

    def step(self) -> None:
        pass

    def get_last_lr(self) -> list:
        return self.scheduler.get_last_lr()

    def state_dict(self) -> dict:
        return self.scheduler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.scheduler.load_state_dict(state)


def one_cycle(optimizer, total_steps: int, epoch_steps, max_lr: float, pct_start: float = 0.0, div_factor: float = 25,
              final_div_factor: float = 0.4, stepped: bool = False):
    """torch's OneCycleLR over the run's optimizer steps (Cranjis-McB: pct_start 0, max_lr 1e-3, div_factor 25,
    final_div_factor 0.4, RECIPES.md 4.1). stepped=False (as published: never stepped): construction sets lr to
    its step-0 value, about max_lr, and AdamW's beta1 to about 0.85 (momentum cycling), for the whole run;
    stepped=True (the fix): cosine from max_lr down to max_lr / div_factor / final_div_factor with beta1 rising to
    0.95, stepped once per optimizer step."""
    scheduler = OneCycleLR(optimizer, max_lr=max_lr, total_steps=total_steps, pct_start=pct_start,
                           div_factor=div_factor, final_div_factor=final_div_factor)
    return scheduler if stepped else NeverStepped(scheduler)
