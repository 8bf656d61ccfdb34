"""Predict a test folder (Kaggle layout) with one or many checkpoints and write a submission.

    python scripts/predict.py --data-root DIR --checkpoints CKPT [CKPT ...] [--blend blend.json]
        --out submission.csv [--per-model-dir DIR] [--repeat-rows] [--no-tta] [--batch-size 8]

Checkpoints of one model name (config "name", e.g. the folds of a sweep) are averaged; names are
blended with blend.json when given (its input names must be the model names), else averaged.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from hms.data.kaggle import DataError
from hms.data.layout import VOTE_COLUMNS
from hms.ensemble.blend import BlendError, apply_blend
from hms.ensemble.predict import predict_folder


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--checkpoints", nargs="+", required=True)
    parser.add_argument("--blend", default=None)
    parser.add_argument("--out", required=True)
    parser.add_argument("--per-model-dir", default=None)
    parser.add_argument("--repeat-rows", action="store_true", help="one row per test.csv row (MLE-bench)")
    parser.add_argument("--no-tta", action="store_true")
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    try:
        per_model, rows = predict_folder(args.data_root, args.checkpoints, args.batch_size, not args.no_tta)
        if args.blend:
            probs = apply_blend(json.loads(Path(args.blend).read_text()), per_model)
        else:
            probs = np.mean(list(per_model.values()), axis=0)
    except (DataError, BlendError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    probs = probs / probs.sum(axis=1, keepdims=True)
    if args.per_model_dir:
        Path(args.per_model_dir).mkdir(parents=True, exist_ok=True)
        for name, p in per_model.items():
            pd.DataFrame({"eeg_id": rows.eeg_id, **dict(zip(VOTE_COLUMNS, p.T))}).to_csv(
                Path(args.per_model_dir) / f"{name}.csv", index=False)
    submission = pd.DataFrame({"eeg_id": rows.eeg_id.to_numpy(), **dict(zip(VOTE_COLUMNS, probs.T))})
    if not args.repeat_rows:
        submission = submission.drop_duplicates("eeg_id")
    submission.to_csv(args.out, index=False)
    print(f"wrote {args.out} ({len(submission)} rows, {len(per_model)} models)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
