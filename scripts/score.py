"""Kaggle's KL divergence of a submission against a solution (rows matched by eeg_id).

    python scripts/score.py SOLUTION SUBMISSION      # the last line printed is the number
"""
import argparse
import sys

import pandas as pd

from hms.data.layout import VOTE_COLUMNS
from hms.ensemble.metric import kaggle_kl


def load(path, role):
    frame = pd.read_csv(path)
    missing = [c for c in ("eeg_id", *VOTE_COLUMNS) if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: {role} lacks columns {missing}")
    return frame


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("solution")
    parser.add_argument("submission")
    args = parser.parse_args()
    try:
        solution, submission = load(args.solution, "solution"), load(args.submission, "submission")
        # one prediction per eeg_id: repeated eeg_ids (MLE-bench style) must agree, so take the first
        predicted = submission.drop_duplicates("eeg_id").set_index("eeg_id")
        missing = set(solution.eeg_id) - set(predicted.index)
        if missing:
            raise ValueError(f"{args.submission}: no prediction for {len(missing)} eeg_ids, e.g. {sorted(missing)[:3]}")
        target = solution[list(VOTE_COLUMNS)].to_numpy(float)
        target = target / target.sum(axis=1, keepdims=True)
        pred = predicted.loc[solution.eeg_id, list(VOTE_COLUMNS)].to_numpy(float)
        for name, frame, path in (("solution", target, args.solution), ("submission", pred, args.submission)):
            try:
                kaggle_kl(frame, frame)
            except ValueError as error:
                raise ValueError(f"{path}: {error}") from None
        score = kaggle_kl(target, pred)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"rows {len(solution)}")
    print(f"{score:.6f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
