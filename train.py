"""Train one model on one fold: python train.py model=fusion fold=0 [group=option ...] [key=value ...]

Hydra composes conf/config.yaml; hms/train/loop.py does the work; the run dir gets oof.csv,
metrics.json, checkpoint.pt, curves.png and .hydra/. The last line printed is `run_dir: <path>`.
Distributed: torchrun --nproc_per_node=N train.py ... (gloo on CPU, nccl on GPU).
"""
import os
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from omegaconf import DictConfig

from hms.train.checkpoint import RunDirInUse
from hms.train.loop import DivergedRun, NonFiniteLoss, train

# Problems the user can fix (bad data, bad option, a path that cannot be written, a diverged run) get one
# line, not a traceback; HMS_DEBUG=1 shows the traceback anyway. A model that cannot be built from its config
# (an unknown backbone, a key the class does not take) reaches us as Hydra's InstantiationException.
USER_ERRORS = (OSError, ValueError, NonFiniteLoss, DivergedRun, RunDirInUse, InstantiationException)


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        metrics = train(cfg, run_dir)
    except USER_ERRORS as error:
        if os.environ.get("HMS_DEBUG"):
            raise
        print("error: " + " ".join(str(error).split()), file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        if os.environ.get("HMS_DEBUG"):
            raise
        saved = run_dir / "checkpoint.pt"
        where = (f"the last checkpoint is {saved}: resume=true hydra.run.dir={run_dir} continues"
                 if saved.exists() else "no epoch had finished: nothing was saved")
        print(f"interrupted: {where}", file=sys.stderr)
        sys.exit(130)
    figures = {k: metrics[k] for k in ("val_kl", "val_kl_all", "prior_kl", "bayes_kl", "gap_closed",
                                       "train_samples_per_s") if metrics.get(k) is not None}
    print(" ".join(f"{k} {v:.4f}" for k, v in figures.items()))
    print(f"run_dir: {run_dir}")
    return metrics.get("val_kl")  # what an optimisation sweeper would minimise


if __name__ == "__main__":
    main()
