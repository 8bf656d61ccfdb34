"""The walkthrough notebook runs top to bottom on a tiny embedded set and leaves a valid submission."""
import os
import re
import sys
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
from nbclient import NotebookClient

from hms.data.layout import SUBMISSION_COLUMNS, VOTE_COLUMNS

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "walkthrough.ipynb"


def pngs(cell) -> int:
    return sum("image/png" in output.get("data", {}) for output in cell.get("outputs", []))


def test_walkthrough_runs_top_to_bottom(tmp_path, monkeypatch):
    out = tmp_path / "out"
    monkeypatch.setenv("HMS_NB_ROOT", str(tmp_path / "synthetic"))
    monkeypatch.setenv("HMS_NB_PATIENTS", "12")
    monkeypatch.setenv("HMS_NB_OUT", str(out))
    monkeypatch.setenv("HMS_NB_TRAIN_ARGS", "trainer.epochs=2 trainer.max_steps=4 trainer.batch_size=4 "
                                            "data.num_workers=0 seed=3")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    # the kernel is this interpreter (the venv), whatever kernelspecs the machine has
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"])
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()

    code = [c for c in notebook.cells if c.cell_type == "code"]
    errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    # a picture per class, learning curves, confusion, calibration
    assert sum(pngs(c) for c in code) >= 6 + 3
    assert len(list((out / "realism").glob("*.png"))) == 6

    submission = pd.read_csv(out / "submission.csv")
    assert list(submission.columns) == list(SUBMISSION_COLUMNS)
    np.testing.assert_allclose(submission[list(VOTE_COLUMNS)].sum(axis=1), 1.0, atol=1e-6)
    text = "".join(o.get("text", "") for c in code for o in c.get("outputs", []))
    kl = float(re.search(r"Kaggle KL on the test part ([0-9.]+)", text).group(1))
    assert 0 < kl < 5
