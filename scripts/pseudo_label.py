"""Pseudo-label the low-vote training rows with trained checkpoints (the 16th place's stage 2):

    python scripts/pseudo_label.py --data-root DIR --checkpoints RUN/checkpoint.pt ... --out pseudo_labels.csv
        [--max-votes 7] [--other-threshold 0.8] [--no-tta] [--merge mean|median]
    python train.py ... sampling.pseudo_labels=pseudo_labels.csv     # stage 2

Every checkpoint predicts every row with at most --max-votes votes (each sub-record, its own inputs and
flip TTA); the mean is the row's pseudo-label; every row of an EEG with any pseudo-label other >=
--other-threshold is dropped. Any model family works: the checkpoints say what they read.
"""
import argparse

from hms.data.kaggle import output_file, run_main
from hms.ensemble.pseudo_label import pseudo_label


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--checkpoints", nargs="+", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--max-votes", type=int, default=7)
    parser.add_argument("--other-threshold", type=float, default=0.8)
    parser.add_argument("--no-tta", action="store_true")
    parser.add_argument("--merge", choices=["mean", "median"], default="mean", help="how the checkpoints combine")
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    output_file(args.out)
    labels = pseudo_label(args.data_root, args.checkpoints, args.max_votes, args.other_threshold,
                          tta=not args.no_tta, batch_size=args.batch_size, merge=args.merge)
    output_file(args.out).parent.mkdir(parents=True, exist_ok=True)
    labels.to_csv(args.out, index=False)
    print(f"{len(labels)} pseudo-labelled rows of {labels.eeg_id.nunique()} EEGs -> {args.out}")
    return 0


if __name__ == "__main__":
    run_main(main)
