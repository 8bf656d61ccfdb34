"""Checkpoints written atomically and loadable with torch.load(weights_only=True); one run per run dir."""
import fcntl
import os
import pickle
from contextlib import contextmanager
from pathlib import Path

import torch

from hms.data.kaggle import first_line


class RunDirInUse(RuntimeError):
    """Another process holds the run dir."""


@contextmanager
def run_dir_lock(run_dir: Path):
    """One run at a time in a run dir (two would mix their checkpoints and predictions): an exclusive lock on
    run_dir/.lock, refused at once while another run holds it. The temp files of a killed save are removed."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / ".lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunDirInUse(f"{run_dir}: another run is using this run dir (give another hydra.run.dir)") from None
        try:
            for stale in run_dir.glob(".*.tmp[0-9]*"):  # save_atomic's temp files of a killed process
                stale.unlink()
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _torch_load(path: Path, map_location):
    """torch.load(weights_only=True), a file that is not a torch checkpoint refused in one line naming it."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, IndexError, ValueError) as error:
        raise ValueError(f"{path}: not a readable checkpoint of this codebase ({first_line(error)[:120]})") from None


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
    state = _torch_load(path, map_location)
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
    return _torch_load(path, map_location)
