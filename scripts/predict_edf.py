"""Per-window probabilities of the six patterns for clinical recordings (EDF, EDF+, BDF), with checkpoints
of this codebase:

    python scripts/predict_edf.py RECORDING.edf [RECORDING ...] --checkpoints CKPT [CKPT ...]
        [--blend blend.json] --out DIR [--step 10] [--channels-map FILE] [--allow-missing]
        [--units uV|mV|V|nV] [--no-tta] [--batch-size 8] [--device cpu|cuda]

Writes DIR/<recording>.csv (one row per 50 s window every --step seconds: start_s, end_s,
seizure_prob ... other_prob, most_likely, missing_channels, flat_channels, spec_padded, no_signal,
clean), DIR/<recording>.png (the timeline) and DIR/report.json (channels found, mapped, missing, units,
rates, windows, assumptions). --channels-map is a JSON file {"file channel": "electrode" or null}, for
channels the automatic matching does not name. Checkpoints of one name are averaged, names blended
with blend.json when given, else averaged. A recording that cannot be read is one line on stderr and
the exit status is 1; the others are still written.
"""
import argparse
import sys

from hms.data.kaggle import run_main
from hms.ensemble.clinical import predict_edf


def positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recordings", nargs="+", help="EDF / EDF+ / BDF files")
    parser.add_argument("--checkpoints", nargs="+", required=True)
    parser.add_argument("--blend", default=None, help="blend.json from scripts/blend_weights.py")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--step", type=positive, default=10.0, help="seconds between window starts (default 10)")
    parser.add_argument("--channels-map", default=None, help='JSON {"file channel": "electrode" or null}')
    parser.add_argument("--allow-missing", action="store_true", help="zero-fill missing electrodes (flagged)")
    parser.add_argument("--units", default=None, help="read every channel in this unit, whatever the header says")
    parser.add_argument("--no-tta", action="store_true", help="skip the flip TTA (4x faster)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    args = parser.parse_args()
    report = predict_edf(args.recordings, args.checkpoints, args.out, args.blend, args.step, args.channels_map,
                         args.allow_missing, args.units, not args.no_tta, args.batch_size, args.device)
    failed = [r for r in report["recordings"] if "error" in r]
    for entry in failed:
        print(f"error: {entry['error']}", file=sys.stderr)
    for entry in report["recordings"]:
        if "error" not in entry:
            print(f"{entry['recording']}: {entry['windows']} windows, {entry['flagged']['not_clean']} flagged")
    print(f"wrote {args.out}/report.json")
    return 1 if failed else 0


if __name__ == "__main__":
    run_main(main)
