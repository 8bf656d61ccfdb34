"""Prepare a data folder for training: labels, folds and the memory-mapped cache of each input.

    python scripts/prepare_data.py --root datamount [--cache-dir DIR] [--folds 5] [--seed 42] [--workers 2]
                                   [--inputs eeg spec]
"""
import argparse
import sys

import pandas as pd

from hms.data.kaggle import DataError
from hms.data.sampling import keep_central_per_vote_vector
from hms.layout import HIGH_VOTE_MIN
from hms.data.prepare import load_prepared, prepare_data


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True)
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--inputs", nargs="+", default=["eeg", "spec"], help="declared inputs (hms/data/inputs.py)")
    args = parser.parse_args()
    try:
        cache = prepare_data(args.root, args.cache_dir, args.folds, args.seed, args.workers, inputs=args.inputs)
        rows = load_prepared(cache, args.inputs).rows
    except (DataError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    high = rows[rows.n_votes >= HIGH_VOTE_MIN]
    kept = pd.Series(keep_central_per_vote_vector(rows), index=rows.index)
    print(f"{len(rows)} rows, {rows.eeg_id.nunique()} EEGs, {rows.patient_id.nunique()} patients, "
          f"{len(high)} rows with 10+ votes, {int(kept.sum())} de-duplicated windows "
          f"({int(kept[rows.n_votes >= HIGH_VOTE_MIN].sum())} with 10+ votes)")
    print("rows per fold:", rows.fold.value_counts().sort_index().to_dict())
    print(f"cache: {cache}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
