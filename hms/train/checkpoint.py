"""Checkpoints written atomically and loadable with torch.load(weights_only=True)."""
import os
from pathlib import Path

import torch


def save_atomic(obj: dict, path: Path) -> None:
    """Write to a temp file in the same folder, then rename: a kill leaves the old file or the new one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def load_weights(model: torch.nn.Module, path, map_location="cpu") -> None:
    """Load the weights another run saved (its validated, EMA weights when it had an EMA) into `model`;
    ValueError naming the file when they do not fit."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: init_from checkpoint not found")
    state = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(state, dict) or "model" not in state:
        raise ValueError(f"{path}: not a checkpoint of this codebase (no 'model' entry)")
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as error:
        raise ValueError(f"{path}: its weights do not fit this model ({str(error).splitlines()[1].strip()})") from None


def load(path: Path, map_location="cpu") -> dict:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no checkpoint to resume from")
    return torch.load(path, map_location=map_location, weights_only=True)
