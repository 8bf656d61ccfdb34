"""Prepare a data folder for training: labels, folds and the memory-mapped cache of each input.

    python scripts/prepare_data.py --root datamount [--cache-dir DIR] [--folds 5] [--seed 42] [--workers 2]
                                   [--inputs eeg spec] [--rebuild]

A part is rebuilt only when its cache key changed (hms/data/prepare.py says what the key covers);
--rebuild rebuilds every part (after an edit the key cannot see, or a damaged cache). Bad data is one
line on stderr naming the file, exit 1, and nothing written (HMS_DEBUG=1 shows the traceback).
"""
import argparse

import pandas as pd

from hms.data.kaggle import run_main
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
    parser.add_argument("--rebuild", action="store_true", help="rebuild the rows and every cache")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    args = parser.parse_args()
    cache = prepare_data(args.root, args.cache_dir, args.folds, args.seed, args.workers, progress=not args.no_progress,
                         inputs=args.inputs, rebuild=args.rebuild)
    rows = load_prepared(cache, args.inputs).rows
    high = rows[rows.n_votes >= HIGH_VOTE_MIN]
    kept = pd.Series(keep_central_per_vote_vector(rows), index=rows.index)
    print(f"{len(rows)} rows, {rows.eeg_id.nunique()} EEGs, {rows.patient_id.nunique()} patients, "
          f"{len(high)} rows with 10+ votes, {int(kept.sum())} de-duplicated windows "
          f"({int(kept[rows.n_votes >= HIGH_VOTE_MIN].sum())} with 10+ votes)")
    print("rows per fold:", rows.fold.value_counts().sort_index().to_dict())
    print(f"cache: {cache}")
    return 0


if __name__ == "__main__":
    run_main(main)
