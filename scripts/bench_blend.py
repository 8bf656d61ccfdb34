"""Blend speed and quality on synthetic out-of-fold predictions: seconds to fit `stack` with its nested
cross-validation (the figure blend_weights.py --method stack costs), and with --compare every method's
cross-validated KL and seconds.

    python scripts/bench_blend.py [--models 20] [--rows 20000] [--seed 0] [--compare] [--hms3-epochs 801]
        [--json PATH]

The set: true class logits per row (a Gaussian draw plus a class prior), targets = 10-28 votes drawn
from their softmax (every row has 10+ votes, so every row is a fit row: the slowest case), patients of
10 rows. Model m predicts softmax(a_m * true logits + its family's shared error + its own noise + a
class miscalibration), with a_m and the noise levels drawn per model and 4 families of correlated
models, so the models differ in quality and their errors partly agree. Figures are printed, never
asserted (tests/ensemble/test_blend.py runs this on a tiny size).
"""
import argparse
import time

import numpy as np
import pandas as pd
from scipy.special import softmax

from hms.benchmark import append_figures, figure
from hms.data.kaggle import run_main
from hms.layout import VOTE_COLUMNS
from hms.ensemble.blend import blend_report, compared_methods, cross_fitted, format_report
from hms.metric import kl_per_row


def synthetic_set(models: int, rows: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """(base frame: eeg_id, patient_id, n_votes, targets; log-probabilities [models, rows, 6])."""
    rng = np.random.default_rng(seed)
    truth = rng.normal(0, 1.5, (rows, 6)) + np.log([0.05, 0.2, 0.13, 0.05, 0.08, 0.49])
    n_votes = rng.integers(10, 29, rows)
    votes = np.stack([rng.multinomial(n, p) for n, p in zip(n_votes, softmax(truth, axis=1))])
    base = pd.DataFrame({"eeg_id": np.arange(rows), "patient_id": np.arange(rows) // 10, "n_votes": n_votes})
    base[list(VOTE_COLUMNS)] = votes / n_votes[:, None]
    family_errors = rng.normal(0, 1.0, (4, rows, 6))
    logits = [rng.uniform(0.4, 1.2) * truth + rng.uniform(0.2, 1.0) * family_errors[m % 4]
              + rng.normal(0, rng.uniform(0.3, 1.5), (rows, 6)) + rng.normal(0, 0.3, 6) for m in range(models)]
    return base, np.log(np.clip(softmax(np.stack(logits), axis=2), 1e-7, 1))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--compare", action="store_true", help="also every method's cross-validated KL and seconds")
    parser.add_argument("--hms3-epochs", type=int, default=801, help="hms3's SGD epochs in --compare (published: 801)")
    parser.add_argument("--json", default=None, help="append the figures to this JSON list (scripts/bench.py)")
    args = parser.parse_args()
    base, logp = synthetic_set(args.models, args.rows, args.seed)
    names = [f"model{m}" for m in range(args.models)]
    print(f"{args.models} models x {args.rows} rows ({base.patient_id.nunique()} patients), all with 10+ votes")
    start = time.perf_counter()
    result = blend_report(names, base, logp, method="stack")
    seconds = time.perf_counter() - start
    print(format_report(result))
    print(f"stack with nested CV (5 outer x 5 inner folds x {len(result['options']['stack']['penalties'])} "
          f"penalties, then the final fit): {seconds:.1f} s")
    append_figures(args.json, [figure(f"blend: stack fit with nested CV, {args.models} models x {args.rows} rows",
                                      [seconds], "s", cv_kl=result["report"]["blend_cross_validated"]["kl_10plus"])])
    if args.compare:
        target = base[list(VOTE_COLUMNS)].to_numpy()
        groups, fit_rows = base.patient_id.to_numpy(), np.ones(len(base), bool)
        mean = np.exp(logp).mean(axis=0)
        mean /= mean.sum(axis=1, keepdims=True)
        print(f"{'method':24s} {'CV KL':>8s} {'seconds':>8s}")
        print(f"{'mean of probabilities':24s} {kl_per_row(target, mean).mean():8.4f}")
        for label, spec in compared_methods({"hms3": {"epochs": args.hms3_epochs}}).items():
            start = time.perf_counter()
            probs, _ = cross_fitted(logp, target, groups, fit_rows, **spec)
            print(f"{label:24s} {kl_per_row(target, probs).mean():8.4f} {time.perf_counter() - start:8.1f}")


if __name__ == "__main__":
    run_main(main)
