"""Kaggle's KL divergence of a submission against a solution (rows matched by eeg_id).

    python scripts/score.py SOLUTION SUBMISSION      # the last line printed is the number

SOLUTION: eeg_id + the six <class>_vote columns (more columns are fine): vote counts (whole, at most
100 per class) or normalised votes (fractions k/n summing to 1); normalised here.
SUBMISSION: exactly the sample_submission columns, rows summing to 1 (within 1e-3), clipped to
[1e-15, 1-1e-15]. Both must hold the same eeg_ids. Swapped arguments are refused: a file of model
probabilities is not a solution, and a file with more columns or vote counts is not a submission.
Repeated eeg_ids (MLE-bench grades one row per test row) are fine on both sides as long as the
submission gives every row of one eeg_id the same prediction.
Any problem is one line on stderr and exit 1 (HMS_DEBUG=1 shows the traceback); nothing is written.
"""
import argparse

from hms.data.kaggle import run_main
from hms.metric import score_submission


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("solution")
    parser.add_argument("submission")
    args = parser.parse_args()
    score, rows = score_submission(args.solution, args.submission)
    print(f"rows {rows}")
    print(f"{score:.6f}")
    return 0


if __name__ == "__main__":
    run_main(main)
