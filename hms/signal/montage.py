"""Node differences (bipolar montages) as a module on the device, and how electrode flips act on them."""
import torch
from torch import nn

from hms.layout import BANANA_PAIRS, EEG_COLUMNS, MIDLINE_PAIRS

# 15th place: temporal chains, parasagittal chains (both walking back to front), transverse pairs.
_TEMPORAL = [("O1", "T5"), ("T5", "T3"), ("T3", "F7"), ("F7", "Fp1"),
             ("O2", "T6"), ("T6", "T4"), ("T4", "F8"), ("F8", "Fp2")]
_PARASAGITTAL = [("O1", "P3"), ("P3", "C3"), ("C3", "F3"), ("F3", "Fp1"),
                 ("O2", "P4"), ("P4", "C4"), ("C4", "F4"), ("F4", "Fp2")]
_TRANSVERSE = [("Fz", "F7"), ("Fz", "F8"), ("Cz", "T3"), ("Cz", "T4"),
               ("Pz", "T5"), ("Pz", "T6"), ("P3", "P4"), ("F3", "F4")]

MONTAGES = {
    # Chris Deotte's 8 pairs (public HMS notebooks)
    "chris8": [[("Fp1", "T3"), ("T3", "O1"), ("Fp1", "C3"), ("C3", "O1"),
                ("Fp2", "C4"), ("C4", "O2"), ("Fp2", "T4"), ("T4", "O2")]],
    "banana16": [list(BANANA_PAIRS)],
    # 3rd place: the same 16 pairs interleaved left/right (even index left, odd right): a left/right
    # swap exchanges pairs 2k and 2k+1
    "interleaved16": [[("Fp1", "F7"), ("Fp2", "F8"), ("F7", "T3"), ("F8", "T4"), ("T3", "T5"), ("T4", "T6"),
                       ("T5", "O1"), ("T6", "O2"), ("Fp1", "F3"), ("Fp2", "F4"), ("F3", "C3"), ("F4", "C4"),
                       ("C3", "P3"), ("C4", "P4"), ("P3", "O1"), ("P4", "O2")]],
    "banana18": [list(BANANA_PAIRS + MIDLINE_PAIRS)],
    "groups24": [_TEMPORAL, _PARASAGITTAL, _TRANSVERSE],
}


class NodeDifferences(nn.Module):
    """eeg [B, 20, T] -> [B, D, T]: electrode a minus electrode b for each pair, by index gathers."""

    def __init__(self, name: str = "banana16"):
        super().__init__()
        if name not in MONTAGES:
            raise ValueError(f"montage {name!r} is not one of {sorted(MONTAGES)}")
        self.name = name
        self.pairs = [p for group in MONTAGES[name] for p in group]
        sizes = [len(g) for g in MONTAGES[name]]
        starts = [sum(sizes[:i]) for i in range(len(sizes))]
        self.groups = [list(range(s, s + n)) for s, n in zip(starts, sizes)]
        self.register_buffer("a", torch.tensor([EEG_COLUMNS.index(a) for a, _ in self.pairs]), persistent=False)
        self.register_buffer("b", torch.tensor([EEG_COLUMNS.index(b) for _, b in self.pairs]), persistent=False)

    @property
    def num_differences(self) -> int:
        return len(self.pairs)

    def forward(self, eeg: torch.Tensor) -> torch.Tensor:
        return eeg.index_select(1, self.a) - eeg.index_select(1, self.b)  # 4x faster than fancy indexing on CPU


def flip_on_differences(pairs, electrode_permutation):
    """(permutation, signs) such that differences(flip(eeg)) == signs * differences(eeg)[:, permutation].

    Flipped electrode i holds original electrode perm[i], so pair (a, b) of the flipped recording is the
    original pair (perm a, perm b): found as is (+1) or reversed (-1). All four montages here are closed
    under both flips; a pair list that is not (Fp1-F7 alone under front/back) raises a ValueError.
    """
    names = [EEG_COLUMNS[i] for i in electrode_permutation]
    moved = {EEG_COLUMNS[i]: names[i] for i in range(len(EEG_COLUMNS))}
    index = {p: i for i, p in enumerate(pairs)}
    permutation, signs = [], []
    for a, b in pairs:
        fa, fb = moved[a], moved[b]
        if (fa, fb) in index:
            permutation.append(index[(fa, fb)]), signs.append(1.0)
        elif (fb, fa) in index:
            permutation.append(index[(fb, fa)]), signs.append(-1.0)
        else:
            raise ValueError(f"the montage is not closed under this flip: {a}-{b} maps to {fa}-{fb}")
    return permutation, signs
