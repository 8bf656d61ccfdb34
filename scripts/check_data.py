"""Validate every file a Kaggle-layout data folder references (the rules: hms/data/check.py).

python scripts/check_data.py --root DIR [--only train|test] [--no-progress]
Prints one line per problem (naming the file), one `note:` line per documented repair the pipeline
will make (zero-padded spectrogram windows, inf read as NaN, ...), a `check_data: checked ...` line
(which files and how many rows were read) and a summary. train.csv and test.csv must both exist
unless --only names one part. Exit 1 if any problem (and one `error:` line on stderr), 0 otherwise;
HMS_DEBUG=1 shows the traceback of an unexpected error.
"""
import argparse
import sys

from hms.data.check import check_folder
from hms.data.kaggle import run_main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, help="data folder in the Kaggle HMS layout")
    parser.add_argument("--only", choices=("train", "test"), default=None,
                        help="check one part only (a test-only folder for prediction: --only test)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = parser.parse_args()
    report = check_folder(args.root, progress=not args.no_progress, only=args.only)
    for problem in report.problems:
        print(problem)
    for note in report.notes:
        print(f"note: {note}")
    print(f"check_data: checked {'; '.join(report.checked) or 'nothing'}")
    n, m = len(report.problems), len(report.notes)
    print(f"check_data: {n} problem{'' if n == 1 else 's'}, {m} note{'' if m == 1 else 's'} in {args.root}")
    if n:
        print(f"error: check_data found {n} problem{'' if n == 1 else 's'} in {args.root} (listed on stdout)",
              file=sys.stderr)
    return 1 if n else 0


if __name__ == "__main__":
    run_main(main)
