"""scripts/spectrogram_constants.py: Cranjis-McB's global standardisation constants in both orders."""
import subprocess
import sys

import numpy as np
import pytest

from hms.data.dataset import HMSDataset
from hms.data.prepare import load_prepared, prepare_data
from hms.data.sampling import dedup_mask, window_offsets
from scripts.spectrogram_constants import constants
from tests.helpers import SCRIPTS


def numpy_images(root, limit, order):
    """The notebooks' numpy: 4 panels transposed, then per-pixel min / max / mean / range (cell 14), the log
    before ("fixed") or after ("published") the features."""
    prepared = load_prepared(prepare_data(root, inputs=["spec"]), ["spec"])
    positions = np.flatnonzero(dedup_mask(prepared.rows, "first_per_vote_vector"))[:limit]
    dataset = HMSDataset(prepared, positions, window_offsets=window_offsets(prepared.rows, "group_middle"))

    def log(x):
        return np.log(np.clip(x, np.exp(-4), np.exp(8)))

    for i in range(len(dataset)):
        spec = dataset[i]["spec"].numpy().astype(np.float64)
        x = np.stack([spec[:, 100 * k:100 * k + 100].T for k in range(4)])
        x = log(x) if order == "fixed" else x
        image = np.vstack([np.min(x, 0), np.max(x, 0), np.mean(x, 0), np.max(x, 0) - np.min(x, 0)])
        yield image if order == "fixed" else log(image)


@pytest.mark.parametrize("order", ["fixed", "published"])
def test_the_constants_equal_the_notebooks_numpy(small_set, order):
    images = list(numpy_images(small_set, 40, order))
    expected = (np.nanmean([np.nanmean(x) for x in images]), np.nanmean([np.nanstd(x) for x in images]))
    np.testing.assert_allclose(constants(small_set, "global", order, limit=40), expected, rtol=1e-6)


def test_both_orders_agree_for_the_panels_and_differ_for_global_features(small_set):
    assert constants(small_set, "panels", "fixed", 40) == pytest.approx(constants(small_set, "panels", "published", 40))
    assert constants(small_set, "global", "fixed", 40) != pytest.approx(constants(small_set, "global", "published", 40))
    with pytest.raises(ValueError, match="--order"):
        constants(small_set, "global", "backwards", 40)


def test_the_command_prints_the_preset_override(small_set):
    done = subprocess.run([sys.executable, str(SCRIPTS / "spectrogram_constants.py"), "--root", str(small_set),
                           "--limit", "8"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().startswith("model.norm_stats=[")
    bad = subprocess.run([sys.executable, str(SCRIPTS / "spectrogram_constants.py"), "--root", str(small_set),
                          "--features", "wavelets"], capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "--features" in bad.stderr and "Traceback" not in bad.stderr
