"""Fit ensemble weights and class biases on out-of-fold predictions, or apply them.

    python scripts/blend_weights.py RUN_OR_OOF [RUN_OR_OOF ...] --out blend.json [--min-votes 10]
        [--non-negative] [--l2 1e-3] [--per-class] [--folds 5]
    python scripts/blend_weights.py --apply blend.json PRED_CSV [PRED_CSV ...] --out submission.csv

An input is a run dir (with oof.csv), a folder of fold run dirs (a multirun's <name>/, its fold*/oof.csv
concatenated) or an oof csv; its name is the folder name or the csv stem. The blend is
softmax(sum_m w_m log p_m + b); --l2 pulls the weights towards the plain average 1/M.
For --apply, per-model prediction csvs are in the sample_submission format (scripts/predict.py
--per-model-dir writes them as <name>.csv) and are matched to the blend's inputs by name, else by order.
"""
import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from hms.layout import VOTE_COLUMNS
from hms.ensemble.blend import (BlendError, align, apply_blend, blend_report, format_report, read_oof,
                                read_blend, read_predictions, unique_names)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", help="run dirs / oof csvs, or with --apply per-model prediction csvs")
    parser.add_argument("--out", required=True, help="blend.json, or with --apply submission.csv")
    parser.add_argument("--apply", default=None, metavar="BLEND_JSON", help="apply this blend to prediction csvs")
    parser.add_argument("--min-votes", type=int, default=10, help="fit on rows with at least this many votes")
    parser.add_argument("--non-negative", action="store_true", help="constrain the weights to be >= 0")
    parser.add_argument("--l2", type=float, default=1e-3, help="penalty on (w - 1/M)^2")
    parser.add_argument("--per-class", action="store_true", help="one weight per model and class")
    parser.add_argument("--folds", type=int, default=5, help="cross-fitting folds, grouped by patient")
    args = parser.parse_args()
    try:
        if args.apply:
            eeg_id, probs = read_predictions(args.inputs)
            blended = apply_blend(read_blend(args.apply), probs)
            pd.DataFrame({"eeg_id": eeg_id, **dict(zip(VOTE_COLUMNS, blended.T))}).to_csv(args.out, index=False)
            print(f"wrote {args.out} ({len(blended)} rows)")
            return 0
        named = [read_oof(p) for p in args.inputs]
        names = unique_names([n for n, _ in named])
        base, logp = align(list(zip(names, [f for _, f in named])))
        result = blend_report(names, base, logp, args.min_votes, args.folds, non_negative=args.non_negative,
                              l2=args.l2, per_class=args.per_class)
    except BlendError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(format_report(result))
    weights = {n: [round(x, 3) for x in w] if isinstance(w, list) else round(w, 3) for n, w in result["weights"].items()}
    print(f"weights {weights} class_bias {[round(b, 3) for b in result['class_bias']]}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
