"""Fit ensemble weights and class biases on out-of-fold predictions, or apply them.

    python scripts/blend_weights.py RUN_OR_OOF [RUN_OR_OOF ...] --out blend.json [--min-votes 10]
        [--non-negative] [--l2 1e-3] [--per-class] [--folds 5]
    python scripts/blend_weights.py --apply blend.json PRED_CSV [PRED_CSV ...] --out submission.csv

An input is a run dir (with oof.csv), a folder of fold run dirs (their oof.csv are concatenated) or an
oof csv. Per-model prediction csvs for --apply are in the sample_submission format, named <model>.csv.
"""
import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from hms.data.layout import VOTE_COLUMNS
from hms.ensemble.blend import BlendError, align, apply_blend, blend_report, read_oof


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+")
    parser.add_argument("--out", required=True)
    parser.add_argument("--apply", default=None, help="blend.json to apply to per-model prediction csvs")
    parser.add_argument("--min-votes", type=int, default=10)
    parser.add_argument("--non-negative", action="store_true")
    parser.add_argument("--l2", type=float, default=1e-3)
    parser.add_argument("--per-class", action="store_true")
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args()
    try:
        if args.apply:
            blend = json.loads(Path(args.apply).read_text())
            frames = {Path(p).stem: pd.read_csv(p) for p in args.inputs}
            first = next(iter(frames.values()))
            probs = apply_blend(blend, {n: f[list(VOTE_COLUMNS)].to_numpy() for n, f in frames.items()})
            pd.DataFrame({"eeg_id": first.eeg_id, **dict(zip(VOTE_COLUMNS, probs.T))}).to_csv(args.out, index=False)
            print(f"wrote {args.out}")
            return 0
        named = [read_oof(p) for p in args.inputs]
        names = [n for n, _ in named]
        if len(set(names)) != len(names):  # same folder names from different sweeps
            names = [f"{n}_{i}" for i, n in enumerate(names)]
        base, logp = align(list(zip(names, [f for _, f in named])))
        result = blend_report(names, base, logp, args.min_votes, args.folds, non_negative=args.non_negative,
                              l2=args.l2, per_class=args.per_class)
    except (BlendError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    Path(args.out).write_text(json.dumps(result, indent=2))
    r = result["report"]
    print(f"{'input':30s} {'KL 10+':>8s} {'KL all':>8s}")
    for name, kls in r["models"].items():
        print(f"{name:30s} {kls['kl_10plus']:8.4f} {kls['kl_all']:8.4f}")
    for label, key in (("mean of probabilities", "mean_of_probabilities"), ("blend (cross-validated)", "blend_cross_validated")):
        print(f"{label:30s} {r[key]['kl_10plus']:8.4f} {r[key]['kl_all']:8.4f}")
    print(f"weights {result['weights']} class_bias {[round(b, 3) for b in result['class_bias']]}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
