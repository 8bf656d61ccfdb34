"""Kaggle's KL divergence of a submission against a solution (rows matched by eeg_id).

    python scripts/score.py SOLUTION SUBMISSION      # the last line printed is the number

SOLUTION: eeg_id + the six <class>_vote columns (votes or normalised votes; normalised here).
SUBMISSION: the sample_submission format, rows summing to 1 (within 1e-3), clipped to [1e-15, 1-1e-15].
Repeated eeg_ids (MLE-bench grades one row per test row) are fine on both sides as long as the
submission gives every row of one eeg_id the same prediction.
"""
import argparse
import sys

from hms.metric import score_submission


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("solution")
    parser.add_argument("submission")
    args = parser.parse_args()
    try:
        score, rows = score_submission(args.solution, args.submission)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"rows {rows}")
    print(f"{score:.6f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
