"""Paths and config composition shared by the tests."""
from pathlib import Path

from hydra import compose, initialize_config_dir

REPO = Path(__file__).resolve().parent.parent
CONF = str(REPO / "conf")
SCRIPTS = REPO / "scripts"


def compose_config(*overrides):
    """conf/config.yaml with the given overrides, as train.py would see it."""
    with initialize_config_dir(CONF, version_base="1.3"):
        return compose("config", overrides=list(overrides))


def spec_columns(region_order) -> list[int]:
    """A permutation of the 4 Kaggle spectrogram regions as one of its 400 power columns."""
    from hms.layout import SPEC_BINS
    return [r * len(SPEC_BINS) + k for r in region_order for k in range(len(SPEC_BINS))]


def options(group: str) -> list[str]:
    """The options of a config group: its yaml files, as a user types them (`model=fusion`)."""
    return sorted(p.stem for p in (REPO / "conf" / group).glob("*.yaml"))


MODELS, SIZES = options("model"), options("size")

# The 15th-place recipe shrunk to CPU size: only the sizes change, every other number is the preset's.
HMS15_TINY = ["pretrained=false", "size=tiny", "model.extractors.wavenet.montage=chris8",
              "model.extractors.wavenet.channels=[4,4]", "model.extractors.wavenet.layers=[3,1]",
              "model.extractors.wavenet.input_pool=10", "model.extractors.wavenet.downsample=10",
              "model.extractors.stft.hop_length=184", "model.extractors.spec_attn.pool=[10,4]",
              "model.extractors.spec_attn.hidden=16", "trainer.epochs=1", "trainer.max_steps=2",
              "trainer.batch_size=4", "data.num_workers=0", "sampling.train_min_votes=1"]


def input_batch(n: int = 2, names=None, seed: int = 0) -> dict:
    """A batch holding a random window of every declared input (or of `names`)."""
    from hms.data.inputs import INPUTS, random_batch
    return random_batch(list(INPUTS) if names is None else names, n, seed)


def run_script_here(capsys, script: str, *args):
    """scripts/<script> run as __main__ in this process (a fresh one pays seconds of imports) ->
    CompletedProcess(args, exit code (0 for a plain return), stdout, stderr)."""
    import runpy
    import subprocess
    import sys

    import pytest
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "argv", [script, *map(str, args)])
        with pytest.raises(SystemExit) as exit_info:
            runpy.run_path(str(SCRIPTS / script), run_name="__main__")
    out = capsys.readouterr()
    return subprocess.CompletedProcess(args, exit_info.value.code or 0, out.out, out.err)
