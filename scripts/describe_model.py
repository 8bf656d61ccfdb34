"""Print what a composed model is made of, without downloading weights or running its backbones:

    python scripts/describe_model.py experiment=hms15_cfg1
    python scripts/describe_model.py model=stft size=published_hgnet

Any Hydra override of train.py works. Per extractor: its backbone, the tensor that backbone sees for one
sample (B x C x H x W; the spectrogram extractor's backbone sees its 10 instances as a batch), the feature
width, the parameter count; then the total. Backbones are built with random weights (pretrained=false).
"""
import sys
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from hydra.utils import instantiate

from hms.data.inputs import random_batch
from hms.data.kaggle import run_main
from hms.models.describe import describe, format_table

CONF = str(Path(__file__).resolve().parent.parent / "conf")


def main(argv) -> int:
    try:
        with initialize_config_dir(CONF, version_base="1.3"):
            cfg = compose("config", overrides=[*argv, "pretrained=false", "name=describe"])
        torch.manual_seed(0)
        model = instantiate(cfg.model)
    except HydraException as error:  # a mistyped group, option or key: the user's, so one line
        raise ValueError("describe_model: " + " ".join(str(error).split())) from None
    print(format_table(describe(model, random_batch(cfg.data.inputs))))
    return 0


if __name__ == "__main__":
    run_main(lambda: main(sys.argv[1:]))
