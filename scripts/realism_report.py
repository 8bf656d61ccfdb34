"""Realism report of a data set folder: a PNG per class (10 s of bipolar montage + spectrogram) and the
label statistics of its 10+ vote rows beside the real ones (printed and written as label_stats.md).

    python scripts/realism_report.py --root DIR --out OUTDIR [--real-rows train_highvote_rows.csv]
"""
import argparse
from pathlib import Path

from hms.data.kaggle import run_main
from hms.synthetic.report import realism_report

REAL_ROWS = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "hms" / "train_highvote_rows.csv"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True, help="a data set folder in the Kaggle layout")
    parser.add_argument("--out", required=True, help="folder for the PNGs and label_stats.md")
    parser.add_argument("--real-rows", default=str(REAL_ROWS) if REAL_ROWS.exists() else None,
                        help="real 10+ vote train rows to compare with (default: the repo's real fixture; "
                             "without it the figures of HMS_FACTS are used)")
    args = parser.parse_args()
    table = realism_report(args.root, args.out, args.real_rows)
    print(table, end="")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    run_main(main)
