"""Realism report of a data set folder: the label statistics of its 10+ vote rows beside the real ones
(label_stats.md), its signal statistics beside real EEG files (signal_stats.md: DC, drift, common
reference, kurtosis, non-stationarity, mains line, spectral lines, amplitude, spectrum, correlations,
EKG), and a PNG per class beside a real window (10 s of one chain, the spectra). Both tables are printed.

    python scripts/realism_report.py --root DIR --out OUTDIR [--real-rows train_highvote_rows.csv]
        [--real-eegs FILE_OR_FOLDER ...] [--windows 2000]

--real-eegs takes EEG parquet files, EDF/BDF recordings and Kaggle-layout folders; by default the real
files in tests/fixtures (a train and the public test EEG of the competition, the PhysioNet EEGMAT
recording).
"""
import argparse
from pathlib import Path

from hms.data.kaggle import run_main
from hms.synthetic.report import realism_report

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
REAL_ROWS = FIXTURES / "hms" / "train_highvote_rows.csv"
REAL_EEGS = [FIXTURES / "hms" / "test_eegs" / "3911565283.parquet", FIXTURES / "hms" / "train_eegs" / "1000913311.parquet",
             FIXTURES / "edf" / "Subject04_2.edf"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True, help="a data set folder in the Kaggle layout")
    parser.add_argument("--out", required=True, help="folder for the PNGs, label_stats.md and signal_stats.md")
    parser.add_argument("--real-rows", default=str(REAL_ROWS) if REAL_ROWS.exists() else None,
                        help="real 10+ vote train rows to compare with (default: the repo's real fixture; "
                             "without it the figures of HMS_FACTS are used)")
    parser.add_argument("--real-eegs", nargs="*", default=[str(p) for p in REAL_EEGS if p.exists()],
                        help="real EEG sources for the signal statistics (default: the repo's real fixtures)")
    parser.add_argument("--windows", type=int, default=2000,
                        help="50 s windows measured per source (default 2000: every train EEG of the default set)")
    args = parser.parse_args()
    if args.windows < 1:
        raise ValueError(f"--windows must be a positive integer, got {args.windows}")
    table = realism_report(args.root, args.out, args.real_rows, args.real_eegs, args.windows)
    print(table, end="")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    run_main(main)
