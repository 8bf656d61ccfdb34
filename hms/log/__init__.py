"""Experiment loggers. The run dir always gets metrics.json and a learning-curves PNG (hms.log.curves);
a logger config can add TensorBoard event files or an offline Neptune run."""
from pathlib import Path


class Logger:
    """Does nothing: the local default, since the run dir already holds every figure."""

    def log_config(self, config: dict) -> None: ...
    def log_metrics(self, metrics: dict, step: int) -> None: ...
    def close(self) -> None: ...


def make_logger(cfg, run_dir: Path, main: bool = True) -> Logger:
    """cfg.kind: local, tensorboard or neptune. Non-main DDP ranks never log."""
    if not main or cfg.kind == "local":
        return Logger()
    if cfg.kind == "tensorboard":
        from hms.log.tensorboard import TensorBoardLogger
        return TensorBoardLogger(Path(run_dir) / "tensorboard")
    if cfg.kind == "neptune":
        from hms.log.neptune import NeptuneLogger
        return NeptuneLogger(cfg.project, cfg.mode, Path(run_dir))
    raise ValueError(f"logger.kind must be local, tensorboard or neptune, not {cfg.kind!r}")
