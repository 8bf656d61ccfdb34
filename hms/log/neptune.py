"""Neptune in offline mode: its hosted service has shut down, but the client still records a run as
files under <run_dir>/.neptune, with no network and no token."""
import os
from pathlib import Path

from hms.log import Logger


class NeptuneLogger(Logger):
    def __init__(self, project: str, mode: str, run_dir: Path):
        if mode not in ("offline", "debug"):
            raise ValueError(f"logger.mode={mode!r}: only offline and debug work without a Neptune server")
        import neptune
        os.environ.setdefault("NEPTUNE_DATA_DIRECTORY", str(run_dir))  # keep the files with the run
        self.run = neptune.init_run(project=project, mode=mode, api_token="offline",
                                    capture_hardware_metrics=False, capture_stdout=False,
                                    capture_stderr=False, capture_traceback=False)

    def log_config(self, config: dict) -> None:
        from neptune.utils import stringify_unsupported
        self.run["config"] = stringify_unsupported(config)

    def log_metrics(self, metrics: dict, step: int) -> None:
        for key, value in metrics.items():
            if isinstance(value, (int, float)):
                self.run[f"metrics/{key}"].append(value, step=step)

    def close(self) -> None:
        self.run.stop()
