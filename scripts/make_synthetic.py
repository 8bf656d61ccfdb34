"""Write the embedded synthetic HMS data set: the Kaggle layout (train and test parts) plus oracle.csv
(true probabilities: the Bayes floor), solution.csv and stats.json.

    python scripts/make_synthetic.py --out DIR [--patients N] [--seed S] [--workers 2] [--line-hz 60|50]
"""
import argparse
import json

from hms.data.kaggle import run_main
from hms.synthetic import DEFAULT_PATIENTS, make_synthetic


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder to write (replaced if it is a synthetic set)")
    parser.add_argument("--patients", type=int, default=DEFAULT_PATIENTS,
                        help=f"train patients (default {DEFAULT_PATIENTS}); test patients are 10%% more")
    parser.add_argument("--seed", type=int, default=0, help="0 <= seed < 2**32")
    parser.add_argument("--workers", type=int, default=2, help="processes")
    parser.add_argument("--line-hz", type=int, choices=[50, 60], default=60, help="mains frequency of the recordings")
    args = parser.parse_args()
    out = make_synthetic(args.out, patients=args.patients, seed=args.seed, workers=args.workers, line_hz=args.line_hz)
    stats = json.loads((out / "stats.json").read_text())
    print(json.dumps({k: v for k, v in stats.items() if k != "highvote"}))
    print("10+ vote rows:", json.dumps(stats["highvote"]))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    run_main(main)
