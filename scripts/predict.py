"""Predict a test folder (Kaggle layout) with one or many checkpoints and write a submission.

    python scripts/predict.py --data-root DIR --checkpoints CKPT [CKPT ...] [--blend blend.json]
        --out submission.csv [--per-model-dir DIR] [--repeat-rows] [--no-tta] [--batch-size 8]
        [--names NAME ...] [--device cpu|cuda] [--match-by-order]

Checkpoints of one model name (config "name"; a multirun's <sweep>/<name>/fold<k>/checkpoint.pt) are
averaged; names are blended with blend.json when given (any method of blend_weights.py; its input
names are the OOF folder names, i.e. the same model names; other names are refused unless
--match-by-order, which gives them the blend's names in order), otherwise averaged. Flip TTA (four
views) unless --no-tta. --per-model-dir writes <name>.csv per model, the input of blend_weights.py --apply.
--repeat-rows writes one row per test.csv row (graders that repeat eeg_ids) instead of one per eeg_id.
"""
import argparse
from pathlib import Path

from hms.data.kaggle import output_file, run_main
from hms.ensemble.blend import read_blend
from hms.ensemble.predict import combine_models, predict_folder, submission_frame


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", required=True, help="folder with test.csv, test_eegs/, test_spectrograms/")
    parser.add_argument("--checkpoints", nargs="+", required=True)
    parser.add_argument("--blend", default=None, help="blend.json from scripts/blend_weights.py")
    parser.add_argument("--match-by-order", action="store_true",
                        help="give the models blend.json's input names in checkpoint order (default: by name)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--per-model-dir", default=None, help="also write <name>.csv per model here")
    parser.add_argument("--repeat-rows", action="store_true", help="one row per test.csv row (MLE-bench)")
    parser.add_argument("--no-tta", action="store_true", help="skip the flip TTA (4x faster)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--names", nargs="+", default=None, help="model name per checkpoint (default: config name)")
    parser.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    args = parser.parse_args()
    blend = read_blend(args.blend) if args.blend else None  # fail before the long part
    output_file(args.out)
    per_model, rows = predict_folder(args.data_root, args.checkpoints, args.batch_size, not args.no_tta,
                                     args.device, names=args.names)
    probs = combine_models(per_model, blend, args.match_by_order, source=args.blend)
    if args.per_model_dir:
        Path(args.per_model_dir).mkdir(parents=True, exist_ok=True)
        for name, p in per_model.items():
            submission_frame(rows, p, args.repeat_rows).to_csv(Path(args.per_model_dir) / f"{name}.csv", index=False)
    submission = submission_frame(rows, probs, args.repeat_rows)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    submission.to_csv(args.out, index=False)
    print(f"wrote {args.out} ({len(submission)} rows, models {sorted(per_model)})")
    return 0


if __name__ == "__main__":
    run_main(main)
