"""Every number and choice of a training config checked once, at start-up, each error naming its key.

A bad value (batch_size=0, fold=abc, an unknown AMP mode) fails here in one line, before any data is read,
instead of as a ZeroDivisionError mid-epoch or silently (a fold outside the folds trains on every row with no
validation). A resumed run is checked against the config its checkpoint stored.
"""
import math

from omegaconf import OmegaConf

from hms.data.loader import LOADERS
from hms.data.prepare import READERS
from hms.data.sampling import DEDUP_RULES
from hms.train.losses import WEIGHTINGS

AMP_MODES = ("bf16", "fp16", "none")


class ConfigError(ValueError):
    """One line naming the config key and the value it refused."""


def _value(cfg, key: str):
    return OmegaConf.select(cfg, key, throw_on_missing=False)


def _integer(cfg, key: str, low: int | None = None, high: int | None = None, optional: bool = False) -> None:
    value = _value(cfg, key)
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{key} must be an integer, not {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f">= {low}" if high is None else f"in {low}..{high}"
        raise ConfigError(f"{key} must be {bounds}, not {value}")


def _number(cfg, key: str, low: float | None = None, high: float | None = None, low_open: bool = False,
            optional: bool = False) -> None:
    value = _value(cfg, key)
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ConfigError(f"{key} must be a number, not {value!r}")
    if low is not None and (value < low or (low_open and value == low)):
        raise ConfigError(f"{key} must be {'>' if low_open else '>='} {low}, not {value}")
    if high is not None and value > high:
        raise ConfigError(f"{key} must be <= {high}, not {value}")


def _choice(cfg, key: str, choices) -> None:
    value = _value(cfg, key)
    if value not in choices:
        raise ConfigError(f"{key} must be one of {list(choices)}, not {value!r}")


def check_config(cfg) -> None:
    """Refuse, in one line naming the key, any value the training loop cannot run as intended."""
    _integer(cfg, "data.n_folds", 2)
    _integer(cfg, "fold", -1, _value(cfg, "data.n_folds") - 1)  # -1: train on every row, no validation
    _integer(cfg, "seed")
    _choice(cfg, "data.loader", LOADERS)
    _integer(cfg, "data.num_workers", 1 if _value(cfg, "data.loader") == "threads" else 0)
    _choice(cfg, "data.reader", READERS)
    _integer(cfg, "data.fold_seed")
    tr = "trainer"
    for key in ("epochs", "batch_size", "accumulate", "val_batch_size"):
        _integer(cfg, f"{tr}.{key}", 1)
    _integer(cfg, f"{tr}.max_steps", 1, optional=True)
    _number(cfg, f"{tr}.grad_clip", 0, low_open=True)
    _choice(cfg, f"{tr}.amp", AMP_MODES)
    _choice(cfg, f"{tr}.device", ("auto", "cpu", "cuda"))
    _number(cfg, f"{tr}.ema_decay", 0, 1, low_open=True, optional=True)
    _choice(cfg, f"{tr}.ema_every", ("step", "epoch"))
    _choice(cfg, f"{tr}.eval_at", ("epoch_end", "half_epochs"))
    _number(cfg, "optim.lr", 0)
    for key in ("flip_lr_p", "flip_fb_p", "cropcat_p", "cutmix_p"):
        _number(cfg, f"aug.{key}", 0, 1)
    _integer(cfg, "aug.mosaic_epochs", 0)
    _choice(cfg, "loss.weighting", WEIGHTINGS)
    _number(cfg, "loss.label_smoothing", 0, 1)
    sm = "sampling"
    _integer(cfg, f"{sm}.train_min_votes", 0)
    _integer(cfg, f"{sm}.val_min_votes", 0)
    _choice(cfg, f"{sm}.dedup", DEDUP_RULES)
    _choice(cfg, f"{sm}.val_dedup", DEDUP_RULES)
    _choice(cfg, f"{sm}.window", ("row", "group_middle"))
    _choice(cfg, f"{sm}.folds", ("data", "vote_vector_groups"))
    _number(cfg, f"{sm}.time_shift_seconds", 0)


# What a resumed run must share with the run that wrote its checkpoint (trainer.epochs may grow).
RESUME_KEYS = ("fold", "seed", "model", "data.root", "data.inputs", "data.n_folds", "data.fold_seed", "sampling")


def check_resume(stored: dict, cfg, path) -> None:
    """Refuse to continue a checkpoint written by another fold, model, seed, data set or row selection."""
    current = OmegaConf.to_container(cfg, resolve=True)
    differ = [key for key in RESUME_KEYS
              if OmegaConf.select(OmegaConf.create(stored), key) != OmegaConf.select(OmegaConf.create(current), key)]
    if differ:
        raise ConfigError(f"{path}: resume=true, but the checkpoint was written with other {', '.join(differ)} "
                          "(use another hydra.run.dir, or the same settings)")
