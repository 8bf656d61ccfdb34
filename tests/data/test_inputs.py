"""Adding an input is one declaration: a per-EEG derived cache declared here, in the test, flows through
preparation, the Dataset and its flips, CropCat, training, validation TTA and inference with no edit to
any file of the package."""
import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

import hms.train.loop as loop

from hms.data.dataset import HMSDataset, TestDataset
from hms.data.inputs import INPUTS, Input, flip_batch, get_inputs, register_input
from hms.data.kaggle import read_eeg
from hms.data.prepare import load_prepared, prepare_data
from hms.ensemble.predict import predict_folder
from hms.layout import BANANA_PAIRS, EEG_COLUMNS, SPEC_REGION_FLIP_FB, SPEC_REGION_FLIP_LR
from hms.train.augment import cropcat
from tests.train.test_loop import config

FRAME = 40  # samples per envelope row: 5 rows per second


def chain_envelope(eeg: np.ndarray) -> np.ndarray:
    """[n, 20] microvolts -> [n // 40, 4]: mean |bipolar| over each chain's 4 pairs, per 0.2 s frame."""
    a = [EEG_COLUMNS.index(p) for p, _ in BANANA_PAIRS]
    b = [EEG_COLUMNS.index(q) for _, q in BANANA_PAIRS]
    bipolar = np.abs(np.nan_to_num(eeg[:, a] - eeg[:, b]))  # [n, 16], chain by chain
    frames = bipolar[: len(bipolar) // FRAME * FRAME].reshape(-1, FRAME, 4, 4)
    return frames.mean(axis=(1, 3)).astype(np.float32)


@register_input
class ChainEnvelope(Input):
    """A per-EEG image computed once from the EEG file: the declaration is all there is."""
    name, id_column, folder, offset_column = "chain_envelope", "eeg_id", "eegs", "eeg_label_offset_seconds"
    rate, length, width = 200 / FRAME, 250, 4
    channel_major, pad_past_end = False, False
    flips = {"lr": SPEC_REGION_FLIP_LR, "fb": SPEC_REGION_FLIP_FB}  # chains LL, RL, LP, RP like the regions

    def read(self, path):
        return chain_envelope(read_eeg(path)), 0.0

    def count_rows(self, path):
        return len(read_eeg(path)) // FRAME


class EnvelopeModel(nn.Module):
    """A model that reads only the new input (instantiated by _target_ from this test module)."""

    def __init__(self, hidden: int = 8):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.LazyLinear(hidden), nn.ReLU(), nn.Linear(hidden, 6))
        self.net(torch.zeros(1, ChainEnvelope.length, ChainEnvelope.width))  # materialise the lazy layer

    def forward(self, batch):
        return {"logits": self.net(torch.log1p(batch["chain_envelope"])), "aux": {}}


NAMES = ["eeg", "spec", "chain_envelope"]


def test_the_declared_input_is_cached_sliced_and_flipped(small_set, tmp_path):
    cache = prepare_data(small_set, tmp_path / "cache", workers=1, progress=False, inputs=NAMES)
    prepared = load_prepared(cache, NAMES)
    rows = prepared.rows
    position = int(np.flatnonzero(rows.eeg_label_offset_seconds.to_numpy() > 0)[0])
    r = rows.iloc[position]
    item = HMSDataset(prepared, [position])[0]
    expected = chain_envelope(read_eeg(small_set / f"train_eegs/{r.eeg_id}.parquet"))
    first = int(round(r.eeg_label_offset_seconds * 5))
    np.testing.assert_allclose(item["chain_envelope"].numpy(), expected[first:first + 250], rtol=1e-6)
    assert item["eeg"].shape == (20, 10000) and item["spec"].shape == (300, 400)

    flipped = HMSDataset(prepared, [position], flip_lr_p=1.0)[0]
    np.testing.assert_array_equal(flipped["chain_envelope"].numpy(),
                                  item["chain_envelope"].numpy()[:, list(SPEC_REGION_FLIP_LR)])
    batch = {name: torch.stack([item[name], flipped[name]]) for name in NAMES}
    mirrored = flip_batch(batch, get_inputs(NAMES), ("lr",))
    torch.testing.assert_close(mirrored["chain_envelope"][0], flipped["chain_envelope"])
    torch.testing.assert_close(mirrored["eeg"][0], flipped["eeg"])

    # CropCat swaps quarters of its time axis (its rows) together with the other inputs
    batch["target"] = torch.eye(6)[:2]
    batch["n_votes"] = torch.tensor([10.0, 12.0])
    mixed = cropcat(batch, get_inputs(NAMES), p=1.0, generator=torch.Generator().manual_seed(0))
    from_partner = (mixed["chain_envelope"][0] == batch["chain_envelope"][1]).all(dim=1).float().mean()
    eeg_from_partner = (mixed["eeg"][0] == batch["eeg"][1]).all(dim=0).float().mean()
    assert from_partner.item() == pytest.approx(eeg_from_partner.item(), abs=0.01) == pytest.approx(0.5, abs=0.01)

    # adding the input built only its own cache: the others were reused
    stamp = (cache / "eeg.npy").stat().st_mtime_ns
    (cache / "chain_envelope.manifest.json").unlink()
    prepare_data(small_set, tmp_path / "cache", workers=1, progress=False, inputs=NAMES)
    assert (cache / "eeg.npy").stat().st_mtime_ns == stamp


def test_a_model_of_the_new_input_trains_validates_and_predicts(small_set, tmp_path):
    # stop_on_divergence off: two smoke steps of an unnormalised model on the raw envelope (with the embedded
    # set's drift and mains) may look diverged; this test is about the input's path, not the model's quality
    cfg = config(small_set, f"data.inputs=[{','.join(NAMES)}]", "trainer=smoke", "trainer.max_steps=2",
                 "aug=default", "aug.tta=true", "trainer.batch_size=4", "trainer.stop_on_divergence=false")
    cfg.model = OmegaConf.create({"_target_": f"{__name__}.EnvelopeModel"})
    metrics = loop.train(cfg, tmp_path)
    assert metrics["steps"] == 2 and metrics["val_kl"] is not None
    test_item = TestDataset(small_set, NAMES)[0]
    assert test_item["chain_envelope"].shape == (250, 4)
    probs, rows = predict_folder(small_set, [tmp_path / "checkpoint.pt"], tta=True, progress=False)
    assert probs["test"].shape == (len(rows), 6) and np.allclose(probs["test"].sum(axis=1), 1, atol=1e-5)


def test_unknown_or_unflippable_inputs_are_one_line_errors(small_set, tmp_path):
    with pytest.raises(ValueError, match="data.inputs: unknown input 'spek'"):
        get_inputs(["eeg", "spek"])

    class NoFlips(ChainEnvelope):
        name, flips = "no_flips", {}

    inp = NoFlips()
    with pytest.raises(ValueError, match="input 'no_flips' declares no 'lr' flip"):
        inp.flip_order(["lr"])
    assert not inp.has_tta and INPUTS["chain_envelope"].has_tta
    assert pd.Series(NAMES).isin(list(INPUTS)).all()


def test_the_16th_place_eeg_mel_cache_equals_a_fresh_computation(small_set, tmp_path):
    from hms.data.inputs import chris_mel_16th
    names = ["eeg", "eeg_mel"]
    prepared = load_prepared(prepare_data(small_set, tmp_path / "cache", workers=1, progress=False, inputs=names), names)
    rows = prepared.rows
    position = int(np.flatnonzero(rows.eeg_label_offset_seconds.to_numpy() > 0)[0])
    r = rows.iloc[position]
    item = HMSDataset(prepared, [position])[0]
    fresh = chris_mel_16th(read_eeg(small_set / f"train_eegs/{r.eeg_id}.parquet"))
    first = int(round(r.eeg_label_offset_seconds * 200)) // 40
    assert item["eeg_mel"].dtype == torch.uint8 and item["eeg_mel"].shape == (226, 512)
    np.testing.assert_array_equal(item["eeg_mel"].numpy(), fresh[first:first + 226])
    assert np.load(tmp_path / "cache" / "eeg_mel.npy", mmap_mode="r").dtype == np.uint8  # stored as bytes
    flipped = HMSDataset(prepared, [position], flip_lr_p=1.0)[0]["eeg_mel"].numpy()  # LL, LP, RL, RP -> RL, RP, LL, LP
    np.testing.assert_array_equal(flipped[:, :256], item["eeg_mel"].numpy()[:, 256:])
