"""notebooks/walkthrough.ipynb runs top to bottom on a tiny embedded set in a real Jupyter kernel: every
part draws its pictures, and it leaves a valid, scored submission."""
import json
import math
import re
import sys
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
from nbclient import NotebookClient

from hms.layout import CLASSES, VOTE_COLUMNS
from hms.metric import score_submission

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK = REPO / "notebooks" / "walkthrough.ipynb"
# A few optimizer steps over two epochs (two points on the learning curves), no loader workers.
TINY_TRAINING = ("trainer=smoke trainer.epochs=2 trainer.max_steps=4 trainer.batch_size=8 data.num_workers=0 "
                 "seed=3")
PROBE = "import sys\nprint('kernel interpreter:', sys.executable)"


def sections(notebook) -> dict[str, list]:
    """Code cells grouped under the notebook's '## ' headings (cells before the first one: '')."""
    groups, current = {"": []}, ""
    for cell in notebook.cells:
        heading = re.match(r"## (.+)", cell.source) if cell.cell_type == "markdown" else None
        if heading:
            current = heading.group(1).strip()
            groups[current] = []
        elif cell.cell_type == "code":
            groups[current].append(cell)
    return groups


def outputs(cells) -> list[dict]:
    return [output for cell in cells for output in cell.get("outputs", [])]


def pngs(cells) -> int:
    return sum("image/png" in output.get("data", {}) for output in outputs(cells))


def text(cells) -> str:
    return "".join(output.get("text", "") for output in outputs(cells))


def test_walkthrough_runs_top_to_bottom(tmp_path, monkeypatch):
    root, out = tmp_path / "synthetic", tmp_path / "out"
    monkeypatch.setenv("HMS_NB_ROOT", str(root))
    monkeypatch.setenv("HMS_NB_PATIENTS", "12")
    monkeypatch.setenv("HMS_NB_OUT", str(out))
    monkeypatch.setenv("HMS_NB_TRAIN_ARGS", TINY_TRAINING)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("MPLBACKEND", raising=False)  # a non-inline backend would draw nothing

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    notebook.cells.append(nbformat.v4.new_code_cell(PROBE))
    # A kernelspec whose argv is "python" is started with this interpreter (jupyter_client substitutes
    # sys.executable); the probe below checks it really is the venv's.
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()

    probe = notebook.cells.pop()
    assert f"kernel interpreter: {sys.executable}" in text([probe])
    parts = sections(notebook)
    errors = [o for o in outputs(notebook.cells) if o.get("output_type") == "error"]
    assert not errors, errors

    # part 1: the vote histogram and a picture of each class, drawn from the set just built
    data = next(cells for name, cells in parts.items() if name.startswith("1."))
    assert json.loads((root / "stats.json").read_text())["generator"]["patients"] == 12
    assert sorted(p.stem for p in (out / "realism").glob("*.png")) == sorted(CLASSES)
    assert pngs(data) >= 1 + len(CLASSES)
    # part 2: learning curves, confusion matrices and the reliability diagram of two real runs
    runs = next(cells for name, cells in parts.items() if name.startswith("2."))
    assert pngs(runs) >= 3
    for model in ("spec_attn", "stft"):
        metrics = json.loads((out / "runs" / model / "metrics.json").read_text())
        assert metrics["steps"] == 4 and 1 <= len(metrics["history"]) <= 2  # the overrides reached train.py
    # part 3: the blend, the submission and its score beside the other candidates
    submit = next(cells for name, cells in parts.items() if name.startswith("3."))
    assert pngs(submit) >= 1
    assert sorted(json.loads((out / "blend.json").read_text())["weights"]) == ["spec_attn", "stft"]

    sample = pd.read_csv(root / "sample_submission.csv")
    submission = pd.read_csv(out / "submission.csv")
    assert list(submission.columns) == list(sample.columns)
    assert sorted(submission.eeg_id) == sorted(sample.eeg_id)
    probs = submission[list(VOTE_COLUMNS)].to_numpy()
    assert ((probs >= 0) & (probs <= 1)).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)

    printed = re.search(r"Kaggle KL on the test part ([0-9.eE+-]+) \((\d+) EEGs scored\)", text(submit))
    assert printed, text(submit)
    kl = float(printed.group(1))
    assert math.isfinite(kl) and kl > 0
    rescored, rows = score_submission(root / "solution.csv", out / "submission.csv")
    assert abs(kl - rescored) < 1e-4 and int(printed.group(2)) == rows == len(sample)
