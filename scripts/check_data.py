"""Validate every file a Kaggle-layout data folder references.

python scripts/check_data.py --root DIR
Prints one line per problem (naming the file) and a summary; exit 1 if any problem, 0 otherwise.
"""
import argparse
import logging
import sys

from hms.data.check import check_data_folder


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, help="data folder in the Kaggle HMS layout")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = parser.parse_args()
    # Warnings of the readers (all-NaN channels, dropped zero-vote rows) go to stderr.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    problems = check_data_folder(args.root, progress=not args.no_progress)
    for problem in problems:
        print(problem)
    print(f"check_data: {len(problems)} problem{'' if len(problems) == 1 else 's'} in {args.root}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
