"""Fit a blend of out-of-fold predictions and report its honest (cross-fitted) KL, or apply a blend.

    python scripts/blend_weights.py RUN_OR_OOF [RUN_OR_OOF ...] --out blend.json [--min-votes 10]
        [--method logprob|hms3|stack] [--select greedy] [--compare] [--no-chart]
        [--non-negative] [--l2 1e-3] [--per-class] [--hms3-epochs 801] [--folds 5]
    python scripts/blend_weights.py --apply blend.json PRED_CSV [PRED_CSV ...] --out submission.csv
        [--match-by-order]

An input is a run dir (with oof.csv), a folder of fold run dirs (a multirun's <name>/, its fold*/oof.csv
concatenated) or an oof csv; its name is the folder name or the csv stem. Every blend is
softmax(sum_m A_m(log p_m) + b) (hms/ensemble/blend.py):
  logprob (default)  one weight per model (--per-class: per model and class) and a class bias, L-BFGS;
                     --l2 pulls the weights towards the plain average 1/M
  hms3               the 3rd-place HMS blend as published (SGD, 801 epochs, 5 shuffled refits averaged)
  stack              a 6x6 map per model and a bias, L2 towards the plain average, the penalty chosen by
                     a nested patient-grouped CV
--select greedy first picks the inputs, with replacement (Caruana), that the method is fitted on.
Every figure is cross-fitted by patient (eeg_id without patient_id). --compare cross-validates every
method (mean, logprob, logprob per-class, hms3, stack, greedy+stack) into the report; blend.json holds
the --method one. A bar chart of the report is written next to blend.json (same stem, .png).
For --apply, per-model prediction csvs are in the sample_submission format (scripts/predict.py
--per-model-dir writes them as <name>.csv) and are matched to the blend's inputs by name; other names
are refused unless --match-by-order (then the order of the blend's inputs, printed).
"""
import argparse
import json
from pathlib import Path

import pandas as pd

from hms.data.kaggle import output_file, run_main
from hms.layout import VOTE_COLUMNS
from hms.ensemble.blend import (METHODS, align, apply_blend, blend_report, format_report,
                                plot_report, read_oof, read_blend, read_predictions, unique_names)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", help="run dirs / oof csvs, or with --apply per-model prediction csvs")
    parser.add_argument("--out", required=True, help="blend.json, or with --apply submission.csv")
    parser.add_argument("--apply", default=None, metavar="BLEND_JSON", help="apply this blend to prediction csvs")
    parser.add_argument("--match-by-order", action="store_true",
                        help="with --apply: give the predictions the blend's input names in order")
    parser.add_argument("--min-votes", type=int, default=10, help="fit on rows with at least this many votes")
    parser.add_argument("--method", choices=METHODS, default="logprob")
    parser.add_argument("--select", choices=["greedy"], default=None, help="greedy forward selection first")
    parser.add_argument("--compare", action="store_true", help="cross-validate every method into the report")
    parser.add_argument("--no-chart", action="store_true", help="skip the bar chart next to blend.json")
    parser.add_argument("--non-negative", action="store_true", help="logprob: constrain the weights to be >= 0")
    parser.add_argument("--l2", type=float, default=1e-3, help="logprob: penalty on (w - 1/M)^2")
    parser.add_argument("--per-class", action="store_true", help="logprob: one weight per model and class")
    parser.add_argument("--hms3-epochs", type=int, default=801, help="hms3: SGD epochs (published: 801)")
    parser.add_argument("--folds", type=int, default=5, help="cross-fitting folds, grouped by patient")
    args = parser.parse_args()
    out = output_file(args.out)  # checked before the fit, created after it
    if args.apply:
        eeg_id, probs = read_predictions(args.inputs)
        blended = apply_blend(read_blend(args.apply), probs, args.match_by_order, source=args.apply)
        out.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"eeg_id": eeg_id, **dict(zip(VOTE_COLUMNS, blended.T))}).to_csv(out, index=False)
        print(f"wrote {args.out} ({len(blended)} rows)")
        return 0
    named = [read_oof(p) for p in args.inputs]
    names = unique_names([n for n, _ in named])
    base, logp = align(list(zip(names, [f for _, f in named])))
    options = {"logprob": {"non_negative": args.non_negative, "l2": args.l2, "per_class": args.per_class},
               "hms3": {"epochs": args.hms3_epochs}}
    result = blend_report(names, base, logp, args.min_votes, args.folds, args.method, args.select,
                          args.compare, options)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(format_report(result))
    rounded = lambda w: [round(x, 3) for x in w] if isinstance(w, list) else round(w, 3)
    weights = ("a 6x6 map per input (see the file)" if args.method == "stack"
               else {n: rounded(w) for n, w in result["weights"].items()})
    print(f"weights {weights} class_bias {rounded(result['class_bias'])}")
    print(f"wrote {args.out}")
    if not args.no_chart:
        plot_report(result, Path(args.out).with_suffix(".png"))
        print(f"wrote {Path(args.out).with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    run_main(main)
