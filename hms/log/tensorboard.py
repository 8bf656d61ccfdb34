"""TensorBoard event files, opened locally with `tensorboard --logdir outputs`."""
from pathlib import Path

from hms.log import Logger


class TensorBoardLogger(Logger):
    def __init__(self, log_dir: Path):
        from torch.utils.tensorboard import SummaryWriter
        self.writer = SummaryWriter(log_dir=str(log_dir))

    def log_config(self, config: dict) -> None:
        import yaml
        self.writer.add_text("config", "```\n" + yaml.safe_dump(config, sort_keys=False) + "\n```")

    def log_metrics(self, metrics: dict, step: int) -> None:
        for key, value in metrics.items():
            if isinstance(value, (int, float)):
                self.writer.add_scalar(key, value, step)

    def close(self) -> None:
        self.writer.close()
