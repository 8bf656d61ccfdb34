"""An exponential moving average of the weights, validated and saved instead of the raw weights.

warmup "none": torch's EMA with a constant decay; its first update copies the weights. warmup "torch_ema":
the torch_ema package the 16th place used: the average starts from the weights it is created with, and
update n (1-based) uses the decay min(decay, (1 + n) / (10 + n)), so with one update per epoch a decay of
0.8 is never reached in 16 epochs (0.182, 0.25, ... 0.654; the [quirk] of RECIPES.md 3.6).
average_buffers False keeps the live model's buffers (BatchNorm statistics) instead of averaging them,
as torch_ema does.
"""
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


def warmed_up_decay(decay: float):
    """multi_avg_fn of torch_ema's decay schedule; num_averaged counts the updates before this one,
    the creation included, which makes it torch_ema's 1-based update number."""
    def update(averaged, current, num_averaged):
        n = int(num_averaged)
        torch._foreach_lerp_(averaged, current, 1 - min(decay, (1 + n) / (10 + n)))
    return update


def make_ema(model: torch.nn.Module, decay: float | None, warmup: str = "none",
             average_buffers: bool = True) -> AveragedModel | None:
    if not decay:
        return None
    if warmup == "none":
        return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=average_buffers)
    if warmup == "torch_ema":
        ema = AveragedModel(model, multi_avg_fn=warmed_up_decay(decay), use_buffers=average_buffers)
        ema.update_parameters(model)  # the average starts from the initial weights
        return ema
    raise ValueError(f"trainer.ema_warmup must be none or torch_ema, not {warmup!r}")


def update_ema(ema: AveragedModel, model: torch.nn.Module, average_buffers: bool = True) -> None:
    ema.update_parameters(model)
    if not average_buffers:  # the live statistics, not an average of them
        for mine, live in zip(ema.module.buffers(), model.buffers()):
            mine.copy_(live)
