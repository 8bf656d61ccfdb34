"""Expert-like labels of the synthetic set: true vote probabilities, vote draws and label statistics.

Every EEG has a state: its class, a clarity in [0, 1] (how strong its pattern is), and a partner class
(the confusion experts make, HMS_FACTS section 1) with a visibility in [0, 1]. The signal carries all
four (the pattern's amplitude grows with clarity, a fainter partner pattern with visibility), and the
true vote probabilities are a fixed function of them, so a model that reads the signal well can
approach the Bayes floor. For "Other" the partner is a faint mimic of a pattern and clarity is how
clean the background is (visibility = 1 - clarity).
"""
import numpy as np
import pandas as pd

from hms.layout import CLASSES, CONSENSUS_NAMES, HIGH_VOTE_MIN, VOTE_COLUMNS
from hms.metric import kl_per_row

OTHER = CLASSES.index("other")
# Mix of the EEG states; a pattern of low clarity mostly gets "Other" votes, so the consensus mix of
# the 10+ vote rows ends near the real one (Other 51%, LPD 20%, GPD 13%, GRDA 7%, LRDA 5%, Seizure 4%).
STATE_MIX = np.array([0.045, 0.20, 0.125, 0.07, 0.095, 0.465])
# Which pattern a window's secondary feature looks like (row: class, column: partner), after the
# confusions experts make: LPD with GPD and Seizure, LRDA with GRDA, any class with Other.
PARTNER = np.array([
    [0.00, 0.35, 0.35, 0.10, 0.05, 0.15],   # seizure
    [0.25, 0.00, 0.30, 0.25, 0.05, 0.15],   # lpd
    [0.20, 0.35, 0.00, 0.05, 0.25, 0.15],   # gpd
    [0.05, 0.40, 0.05, 0.00, 0.35, 0.15],   # lrda
    [0.05, 0.10, 0.35, 0.35, 0.00, 0.15],   # grda
    [0.10, 0.30, 0.20, 0.20, 0.20, 0.00],   # other: what a messy background is mistaken for
])
# Votes on the class itself at clarity 0 (the rest goes to Other, the partner and the confusions);
# rhythmic delta is the class experts agree on least (real: max vote share ~0.55 vs ~0.7 for LPD).
AGREE_AT_ZERO = np.array([0.20, 0.30, 0.30, 0.12, 0.12, 0.60])
AGREE_SLOPE = 0.70
# Of the votes that leave the class (and are not the partner's), the share that goes to Other.
TO_OTHER = np.array([0.35, 0.45, 0.50, 0.65, 0.65, 0.0])
PARTNER_SHARE = 0.6  # of the votes leaving the class, at partner visibility 1
CLARITY_BETA = (2.2, 1.4)
# Vote counts of the real 10+ vote rows (train_highvote_rows.csv: median 15, max 28).
EXPERT_COUNTS = {10: 98, 11: 320, 12: 693, 13: 1145, 14: 623, 15: 1409, 16: 664, 17: 302, 18: 307,
                 19: 72, 20: 212, 21: 49, 22: 23, 23: 10, 24: 3, 25: 5, 26: 2, 27: 1, 28: 1}
CROWD_COUNTS = {1: 30, 2: 25, 3: 17, 4: 11, 5: 8, 6: 5, 7: 4}
EXPERT_SHARE = 0.30  # of annotations: ~30% of de-duplicated windows have 10+ votes, as in the real set


def true_probabilities(label: int, clarity: float, partner: int, visibility: float) -> np.ndarray:
    """The six probabilities an expert votes with, for one state (rows sum to 1)."""
    agree = AGREE_AT_ZERO[label] + (1 - AGREE_AT_ZERO[label]) * clarity if label == OTHER \
        else AGREE_AT_ZERO[label] + AGREE_SLOPE * clarity
    rest = 1 - agree
    to_partner = rest * PARTNER_SHARE * visibility
    spread = rest - to_partner
    p = np.zeros(6)
    p[label] += agree
    p[partner] += to_partner
    p[OTHER] += spread * TO_OTHER[label]
    p += spread * (1 - TO_OTHER[label]) * PARTNER[label]
    return p


def draw_state(rng, class_mix=STATE_MIX, label: int | None = None) -> dict:
    """A random state: class (drawn from class_mix unless given), clarity, partner class and its
    visibility."""
    label = int(rng.choice(6, p=class_mix)) if label is None else int(label)
    clarity = float(rng.beta(*CLARITY_BETA))
    partner = int(rng.choice(6, p=PARTNER[label]))
    visibility = 1 - clarity if label == OTHER else float(rng.random())
    return {"label": label, "clarity": clarity, "partner": partner, "visibility": visibility}


def _draw_from_table(rng, table: dict) -> int:
    counts = np.array(list(table.values()), dtype=float)
    return int(rng.choice(list(table), p=counts / counts.sum()))


def draw_votes(rng, p: np.ndarray, experts: bool) -> np.ndarray:
    """Vote counts [6] for one annotation: 10-28 votes (experts) or 1-7 (a crowd), multinomial in p."""
    n = _draw_from_table(rng, EXPERT_COUNTS if experts else CROWD_COUNTS)
    return rng.multinomial(n, p)


def consensus(votes: np.ndarray) -> str:
    """expert_consensus of one vote vector: the class with most votes (the first on a tie)."""
    return CONSENSUS_NAMES[int(np.argmax(votes))]


def _entropy(target: np.ndarray) -> np.ndarray:
    safe = np.where(target > 0, target, 1.0)
    return -(target * np.log(safe)).sum(axis=1)


def label_stats(rows: pd.DataFrame, truth: np.ndarray | None = None, min_votes: int = HIGH_VOTE_MIN) -> dict:
    """Figures of the `min_votes`+ rows after de-duplication by (eeg_id, votes): the class mix, mean
    target, target entropy, share unanimous, vote counts, the prior KL and (given `truth`, the true
    probabilities aligned with `rows`) the Bayes KL."""
    votes_all = rows[list(VOTE_COLUMNS)].to_numpy(float)
    keep = (votes_all.sum(axis=1) >= min_votes) & ~rows.duplicated(["eeg_id", *VOTE_COLUMNS]).to_numpy()
    votes = votes_all[keep]
    n_votes = votes.sum(axis=1)
    target = votes / n_votes[:, None]
    prior = np.broadcast_to(target.mean(axis=0), target.shape)  # in-sample, like the real figure
    mix = rows.expert_consensus[keep].value_counts(normalize=True)
    stats = {
        "rows": int(keep.sum()),
        "consensus_mix": {k: round(float(mix.get(k, 0.0)), 3) for k in CONSENSUS_NAMES},
        "mean_target": dict(zip(CLASSES, target.mean(axis=0).round(3).tolist())),
        "target_entropy": round(float(_entropy(target).mean()), 3),
        "unanimous": round(float((target.max(axis=1) == 1).mean()), 3),
        "votes_median": float(np.median(n_votes)),
        "votes_p10_p90": [float(np.percentile(n_votes, 10)), float(np.percentile(n_votes, 90))],
        "prior_kl": round(float(kl_per_row(target, prior).mean()), 4),
    }
    if truth is not None:
        stats["bayes_kl"] = round(float(kl_per_row(target, np.asarray(truth)[keep]).mean()), 4)
    return stats
