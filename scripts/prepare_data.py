"""Prepare a data folder for training: folds, quality flags, de-duplication and memory-mapped caches.

    python scripts/prepare_data.py --root datamount [--cache-dir DIR] [--folds 5] [--seed 42] [--workers 2]
"""
import argparse
import sys

from hms.data.kaggle import DataError
from hms.layout import HIGH_VOTE_MIN
from hms.data.prepare import load_prepared, prepare_data


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True)
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    try:
        cache = prepare_data(args.root, args.cache_dir, args.folds, args.seed, args.workers)
        rows = load_prepared(cache).rows
    except (DataError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    high = rows[rows.n_votes >= HIGH_VOTE_MIN]
    print(f"{len(rows)} rows, {rows.eeg_id.nunique()} EEGs, {rows.patient_id.nunique()} patients, "
          f"{len(high)} rows with 10+ votes, {int(rows.is_kept.sum())} de-duplicated windows "
          f"({int(high.is_kept.sum())} with 10+ votes)")
    print("rows per fold:", rows.fold.value_counts().sort_index().to_dict())
    print(f"cache: {cache}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
