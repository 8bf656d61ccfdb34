"""The Kaggle HMS file layout: column names, orders, rates and window lengths.

Every other module takes these names from here, so a change of convention is one edit.
"""
from decimal import ROUND_HALF_UP, Decimal

CLASSES = ("seizure", "lpd", "gpd", "lrda", "grda", "other")
CONSENSUS_NAMES = ("Seizure", "LPD", "GPD", "LRDA", "GRDA", "Other")
VOTE_COLUMNS = tuple(f"{c}_vote" for c in CLASSES)
PRED_COLUMNS = tuple(f"{c}_pred" for c in CLASSES)

TRAIN_COLUMNS = (
    "eeg_id", "eeg_sub_id", "eeg_label_offset_seconds", "spectrogram_id", "spectrogram_sub_id",
    "spectrogram_label_offset_seconds", "label_id", "patient_id", "expert_consensus", *VOTE_COLUMNS,
)
TEST_COLUMNS = ("spectrogram_id", "eeg_id", "patient_id")
SUBMISSION_COLUMNS = ("eeg_id", *VOTE_COLUMNS)
ORACLE_COLUMNS = ("label_id", "eeg_id", *VOTE_COLUMNS)

ELECTRODES = ("Fp1", "F3", "C3", "P3", "F7", "T3", "T5", "O1", "Fz", "Cz", "Pz",
              "Fp2", "F4", "C4", "P4", "F8", "T4", "T6", "O2")
EEG_COLUMNS = (*ELECTRODES, "EKG")
EEG_RATE = 200  # Hz
EEG_WINDOW_SECONDS = 50
EEG_WINDOW = EEG_RATE * EEG_WINDOW_SECONDS  # 10,000 samples

# The Kaggle spectrogram: one row every 2 s at odd seconds, 4 chains x 100 bins of a 1024-point FFT.
SPEC_WINDOW_SECONDS = 600
SPEC_STEP_SECONDS = 2
SPEC_WINDOW_ROWS = SPEC_WINDOW_SECONDS // SPEC_STEP_SECONDS  # 300
SPEC_FFT = 1024
SPEC_BINS = range(3, 103)
SPEC_REGIONS = ("LL", "RL", "LP", "RP")
# The 50 s EEG window sits in the middle of the 10 min spectrogram window.
EEG_TO_SPEC_SECONDS = 275


def _bin_name(k: int) -> str:
    # Kaggle rounds half up and drops trailing zeros: 3.125 Hz is "3.13", 12.3 Hz is "12.3".
    hz = Decimal(k * EEG_RATE / SPEC_FFT).quantize(Decimal("0.01"), ROUND_HALF_UP)
    return f"{hz.normalize():f}"


SPEC_FREQS = tuple(k * EEG_RATE / SPEC_FFT for k in SPEC_BINS)
SPEC_POWER_COLUMNS = tuple(f"{r}_{_bin_name(k)}" for r in SPEC_REGIONS for k in SPEC_BINS)
SPEC_COLUMNS = ("time", *SPEC_POWER_COLUMNS)

# Bipolar chains of the "double banana" montage; each Kaggle region averages its 4 pairs.
CHAINS = {
    "LL": ("Fp1", "F7", "T3", "T5", "O1"),
    "RL": ("Fp2", "F8", "T4", "T6", "O2"),
    "LP": ("Fp1", "F3", "C3", "P3", "O1"),
    "RP": ("Fp2", "F4", "C4", "P4", "O2"),
}
# The 16 bipolar pairs of the chains, region by region in SPEC_REGIONS order (4 per region), and the
# two midline pairs that make the 18-channel longitudinal montage.
BANANA_PAIRS = tuple((a, b) for r in SPEC_REGIONS for a, b in zip(CHAINS[r], CHAINS[r][1:]))
MIDLINE_PAIRS = (("Fz", "Cz"), ("Cz", "Pz"))

# The "10+ vote" rows (expert-rated windows) that every published figure and ours is reported on.
HIGH_VOTE_MIN = 10

# Mirror images of the head as permutations of EEG_COLUMNS: electrode i of the flipped recording
# is electrode FLIP[i] of the original. EKG and the midline (for left/right) stay in place.
_LR_PAIRS = (("Fp1", "Fp2"), ("F3", "F4"), ("C3", "C4"), ("P3", "P4"),
             ("F7", "F8"), ("T3", "T4"), ("T5", "T6"), ("O1", "O2"))
_FB_PAIRS = (("Fp1", "O1"), ("Fp2", "O2"), ("F3", "P3"), ("F4", "P4"),
             ("F7", "T5"), ("F8", "T6"), ("Fz", "Pz"))


def _swap_permutation(pairs) -> tuple:
    swap = {a: b for a, b in pairs} | {b: a for a, b in pairs}
    return tuple(EEG_COLUMNS.index(swap.get(name, name)) for name in EEG_COLUMNS)


FLIP_LR = _swap_permutation(_LR_PAIRS)
FLIP_FB = _swap_permutation(_FB_PAIRS)

# The Kaggle spectrogram under the same flips, as permutations of SPEC_REGIONS (blocks of 100 columns).
# Left/right swaps the LL<->RL and LP<->RP regions. Front/back maps every chain onto itself reversed and
# negated, and a region is a mean of power spectra, so it leaves the spectrogram unchanged (identity).
SPEC_REGION_FLIP_LR = tuple(SPEC_REGIONS.index(r) for r in ("RL", "LL", "RP", "LP"))
SPEC_REGION_FLIP_FB = tuple(range(len(SPEC_REGIONS)))
