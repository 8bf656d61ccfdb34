"""Write the embedded synthetic HMS data set (Kaggle layout + oracle.csv, solution.csv, stats.json).

    python scripts/make_synthetic.py --out DIR [--patients N] [--seed S] [--workers 2]
"""
import argparse
import json

from hms.data.synthetic import DEFAULT_PATIENTS, make_synthetic


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--patients", type=int, default=DEFAULT_PATIENTS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    out = make_synthetic(args.out, patients=args.patients, seed=args.seed, workers=args.workers)
    print(json.dumps(json.loads((out / "stats.json").read_text()), indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
