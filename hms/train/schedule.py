"""Learning-rate schedule, stepped once per optimizer step (not per epoch, not forgotten)."""
import math

from torch.optim.lr_scheduler import LambdaLR


def cosine_with_warmup(optimizer, total_steps: int, warmup_fraction: float = 0.05,
                       min_lr_ratio: float = 0.0) -> LambdaLR:
    """Linear warm-up over the first warmup_fraction of steps, then cosine down to min_lr_ratio x lr."""
    warmup = int(round(warmup_fraction * total_steps))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return LambdaLR(optimizer, factor)
