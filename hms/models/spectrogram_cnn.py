"""Cranjis-McB ("CMB", 329th place HMS) spectrogram CNNs: one grey image built on the device from 4 planes of
the Kaggle spectrogram (or of Chris Deotte's EEG spectrogram), as the planes stacked or as per-pixel statistics
over them, parts side by side -> a timm backbone (avg pool) -> Dropout + Linear -> 6 logits. RECIPES.md 4.1-4.2
(the images) and 5.1 (the EEG spectrogram).

Order of operations, per part {source, features, norm} (all in fp32, autocast off):

    source spec: spec [B, 300, 400] (rows 2 s apart; columns 100k..100k+99 are region k of LL, RL, LP, RP)
        -> planes [B, 4, 100, 300]: region k transposed to 100 frequency rows (file column order) x 300 time
        -> log(clip(x, e^-4, e^8)) (NaN stays NaN)
        -> norm "panel": (x - nanmean) / (nanstd + 1e-6) per plane | "joint": the same over the 4 planes
           together | "global": (x - mean) / (std + 1e-6) with the constants norm_stats; nanstd is the
           population std (ddof 0), as np.nanstd
        -> NaN -> 0
    source eeg: eeg [B, 20, 10000] microvolts -> Chris Deotte's EEG spectrogram (norm "none"): per chain
        LL Fp1-F7-T3-T5-O1, LP Fp1-F3-C3-P3-O1, RP Fp2-F8-T4-T6-O2, RR Fp2-F4-C4-P4-O2 (this order) and each
        of its 4 pairs a - b: NaN -> the pair's mean over the window (0 if all NaN), librosa's mel power
        (sr 200, n_fft 1024, win 128, hop 39, 128 mels 0-20 Hz, Slaney + norm, center with zero padding),
        dB with ref the pair's max and top_db 80, (dB + 40) / 40; the mean of the 4 pairs; the first
        (frames // 32) * 32 frames (257 -> 256) -> planes [B, 4, 128, 256]
    features "panels": the 4 planes stacked vertically, plane 0 on top | "global": per-pixel min, max, mean,
        max - min over the planes, stacked in that order | "percentiles": per-pixel 20/40/60/80th percentiles
        over the planes (numpy's linear interpolation), stacked -> [B, 4 h, w]
    parts left to right along the width -> image [B, 1, H, W] -> (if the batch holds "image_mix") the mix ->
    backbone -> pooled [B, F] -> head

The published images as `parts` (source, features, norm); efficientnet_b2 unless said, drop_path_rate 0.2 and
head Dropout(0.3) + Linear (baseline.ipynb cell 12) except #2 (timm's plain Linear classifier, no drop path:
spectrogram_stat_image-nb cell 17):

    #   notebook (cell of the image)                       parts                                         C x H x W
    1   baseline (10)                                      [spec panels panel]                           1x400x300
    2   spectrogram_stat_image-nb (14)                     [spec global joint]                           1x400x300
    -   hbac-spec-img-percentiles-nb (14)                  [spec percentiles joint]                      1x400x300
    4a  eeg-percentiles-nb (10)                            [eeg panels none] [eeg percentiles none]      1x512x512
    4b  eeg-global-features-nb (10)                        [eeg global none]                             1x512x256
    6a  vote-weighted-kldiv-loss-cutmix-nb (14)            [spec panels panel] [spec percentiles joint]  1x400x600
    6b  vote-weighted-kldiv-loss-global-cutmix-nb          [spec global joint]                           1x400x300
    7a  effb4_global_normalization_nb_(1) (10, 12); b4     [spec panels global], norm_stats              1x400x300
        (also 8a mosaic-xloss-nb, 9a/9b two-stage; b0)     (-0.08340271, 1.9072835)
    7b  effb2-global-cutmix-nb (10-13)                     [spec global global], norm_stats              1x400x300
        (also 8b mosaic-xloss-global-nb, 9c; b0)           (0.07975473, 1.9484872)

4a/4b read the author's 128x256x4 cache of Chris's recipe (not re-normalised); here it is computed on the
device from the raw window. The same-class CutMix and the mosaic warm-up act on the image through the
"image_mix" hook (hms/models/image_mix.py); the losses are the loop's.
"""
import math

import torch
from torch import nn

from hms.layout import EEG_COLUMNS, EEG_RATE
from hms.models.backbone import create_backbone
from hms.models.image_mix import apply_image_mix
from hms.signal.spectra import MelSpectrogram, power_to_db

SOURCES = ("spec", "eeg")
FEATURES = ("panels", "global", "percentiles")
NORMS = {"spec": ("panel", "joint", "global"), "eeg": ("none",)}
PART_KEYS = ("source", "features", "norm")
# Chris Deotte's chains in his output order (RECIPES.md 5.1); "RP" is the right temporal chain, "RR" the right
# parasagittal one, as he named them.
EEG_CHAINS = {
    "LL": ("Fp1", "F7", "T3", "T5", "O1"),
    "LP": ("Fp1", "F3", "C3", "P3", "O1"),
    "RP": ("Fp2", "F8", "T4", "T6", "O2"),
    "RR": ("Fp2", "F4", "C4", "P4", "O2"),
}
SPEC_REGIONS, SPEC_BINS = 4, 100
EEG_MELS, EEG_FRAME_MULTIPLE = 128, 32
PERCENTILES = (20.0, 40.0, 60.0, 80.0)
EPS = 1e-6


def spectrogram_planes(spec: torch.Tensor) -> torch.Tensor:
    """Kaggle power [B, T, 400] -> log planes [B, 4, 100, T]: region k (columns 100k..100k+99) transposed,
    then log(clip(x, e^-4, e^8)); NaN stays NaN (baseline.ipynb cell 10)."""
    if spec.shape[-1] != SPEC_REGIONS * SPEC_BINS:
        raise ValueError(f"spec must have {SPEC_REGIONS * SPEC_BINS} columns (4 regions x 100 bins), "
                         f"not {spec.shape[-1]}")
    planes = spec.float().unflatten(-1, (SPEC_REGIONS, SPEC_BINS)).permute(0, 2, 3, 1)
    return planes.clamp(math.exp(-4), math.exp(8)).log()


def nan_standardise(x: torch.Tensor, dims) -> torch.Tensor:
    """(x - nanmean) / (nanstd + 1e-6) over dims, nanstd with ddof 0 (np.nanmean, np.nanstd); NaN stays NaN."""
    mean = x.nanmean(dim=dims, keepdim=True)
    std = (x - mean).square().nanmean(dim=dims, keepdim=True).sqrt()
    return (x - mean) / (std + EPS)


def normalise(planes: torch.Tensor, norm: str, stats=None) -> torch.Tensor:
    """Log planes [B, 4, h, w] standardised per plane ("panel"), over all 4 ("joint") or with the constants
    stats = (mean, std) ("global"), then NaN -> 0 (the notebooks' _normalize)."""
    if norm == "panel":
        x = nan_standardise(planes, (2, 3))
    elif norm == "joint":
        x = nan_standardise(planes, (1, 2, 3))
    elif norm == "global":
        x = (planes - stats[0]) / (stats[1] + EPS)
    else:
        raise ValueError(f"norm must be one of {NORMS['spec']} for the spectrogram, not {norm!r}")
    return torch.nan_to_num(x, nan=0.0)


def percentiles(x: torch.Tensor, q=PERCENTILES, dim: int = 1) -> torch.Tensor:
    """The q-th percentiles of x along dim with numpy's default linear interpolation, stacked on dim:
    torch.quantile's numbers, without its 2^24-element input limit (a batch of 128 EEG planes exceeds it)."""
    s = x.sort(dim=dim).values
    n = x.shape[dim]
    out = []
    for p in q:
        position = p / 100 * (n - 1)
        lo = math.floor(position)
        hi, t = min(lo + 1, n - 1), position - lo
        a, b = s.select(dim, lo), s.select(dim, hi)
        out.append(a + (b - a) * t)
    return torch.stack(out, dim=dim)


def plane_features(planes: torch.Tensor, features: str) -> torch.Tensor:
    """Planes [B, 4, h, w] -> [B, 4 h, w]: the planes stacked ("panels"), per-pixel min, max, mean, max - min
    ("global"), or per-pixel 20/40/60/80th percentiles ("percentiles"), top to bottom."""
    if features == "panels":
        stacked = planes
    elif features == "global":
        low, high = planes.amin(dim=1), planes.amax(dim=1)
        stacked = torch.stack([low, high, planes.mean(dim=1), high - low], dim=1)
    elif features == "percentiles":
        stacked = percentiles(planes, PERCENTILES, dim=1)
    else:
        raise ValueError(f"features must be one of {FEATURES}, not {features!r}")
    return stacked.flatten(1, 2)


def chain_pairs() -> tuple[list[int], list[int]]:
    """EEG_COLUMNS indices (a, b) of the 16 pairs a - b, chain by chain in EEG_CHAINS order."""
    pairs = [(a, b) for chain in EEG_CHAINS.values() for a, b in zip(chain, chain[1:])]
    return [EEG_COLUMNS.index(a) for a, _ in pairs], [EEG_COLUMNS.index(b) for _, b in pairs]


def fill_nan_with_mean(x: torch.Tensor) -> torch.Tensor:
    """[..., T]: NaN -> the signal's mean over T, 0 when all of it is NaN (Chris Deotte's recipe)."""
    mean = torch.nan_to_num(x.nanmean(dim=-1, keepdim=True), nan=0.0)
    return torch.where(torch.isnan(x), mean, x)


def eeg_planes(eeg: torch.Tensor, mel: MelSpectrogram, first: list[int], second: list[int]) -> torch.Tensor:
    """Chris Deotte's EEG spectrogram (RECIPES.md 5.1) of raw [B, 20, T] -> [B, 4, 128, (frames // 32) 32]."""
    b = len(eeg)
    x = fill_nan_with_mean(eeg.float()[:, first] - eeg.float()[:, second])  # [B, 16, T]
    db = power_to_db(mel(x.flatten(0, 1)), top_db=80.0)  # [B 16, 128, frames], ref = each pair's max
    image = ((db + 40) / 40).view(b, len(EEG_CHAINS), 4, *db.shape[1:]).mean(dim=2)
    width = image.shape[-1] // EEG_FRAME_MULTIPLE * EEG_FRAME_MULTIPLE
    return image[..., :width]


def check_parts(parts) -> list[dict]:
    """The part list as plain dicts, every key and value checked; equal heights across parts."""
    if isinstance(parts, (str, bytes)) or not hasattr(parts, "__iter__"):
        raise ValueError(f"parts must be a list of {{source, features, norm}}, not {parts!r}")
    checked = []
    for i, part in enumerate(parts):
        if not hasattr(part, "keys"):
            raise ValueError(f"parts[{i}] must be a mapping {{source, features, norm}}, not {part!r}")
        part = {k: part[k] for k in part.keys()}
        unknown = sorted(set(part) - set(PART_KEYS))
        missing = [k for k in PART_KEYS if k not in part]
        if unknown or missing:
            raise ValueError(f"parts[{i}] needs exactly the keys {PART_KEYS}: "
                             f"unknown {unknown}, missing {missing}")
        if part["source"] not in SOURCES:
            raise ValueError(f"parts[{i}].source must be one of {SOURCES}, not {part['source']!r}")
        if part["features"] not in FEATURES:
            raise ValueError(f"parts[{i}].features must be one of {FEATURES}, not {part['features']!r}")
        if part["norm"] not in NORMS[part["source"]]:
            raise ValueError(f"parts[{i}].norm must be one of {NORMS[part['source']]} for source "
                             f"{part['source']!r}, not {part['norm']!r}"
                             + (" (Chris Deotte's EEG spectrogram is not re-normalised)"
                                if part["source"] == "eeg" else ""))
        checked.append(part)
    if not checked:
        raise ValueError("parts is empty: name at least one {source, features, norm}")
    heights = [part_height(p) for p in checked]
    if len(set(heights)) > 1:
        listed = ", ".join(f"parts[{i}] {p['source']}/{p['features']}/{p['norm']} {h} rows"
                           for i, (p, h) in enumerate(zip(checked, heights)))
        raise ValueError(f"parts must have equal heights to sit side by side: {listed}")
    return checked


def part_height(part: dict) -> int:
    return 4 * (SPEC_BINS if part["source"] == "spec" else EEG_MELS)


class DropoutLinear(nn.Linear):
    """Dropout(p) then Linear: the published head, nn.Sequential(nn.Dropout(p), nn.Linear(F, 6)) (baseline.ipynb
    cell 12), as a Linear (out_features, weight, and the state-dict keys of a plain Linear head)."""

    def __init__(self, in_features: int, out_features: int, p: float):
        super().__init__(in_features, out_features)
        self.dropout = nn.Dropout(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(self.dropout(x))


class SpectrogramCNN(nn.Module):
    """Defaults: the baseline image (4 per-panel standardised spectrogram planes stacked, 1x400x300) with a timm
    test backbone. head_dropout a number: Dropout(head_dropout) + Linear (published 0.3); None: timm's plain
    Linear classifier (spectrogram_stat_image-nb cell 17). norm_stats (mean, std) serve the "global" norm."""

    supports_image_mix = True

    def __init__(self, parts=({"source": "spec", "features": "panels", "norm": "panel"},),
                 norm_stats=(-0.08340271, 1.9072835), backbone: str = "test_efficientnet",
                 pretrained: bool = False, weights_path: str | None = None, drop_path_rate: float = 0.0,
                 head_dropout: float | None = 0.3):
        super().__init__()
        self.parts = check_parts(parts)
        try:
            stats = tuple(float(v) for v in norm_stats)
        except (TypeError, ValueError):
            stats = ()
        if not (len(stats) == 2 and all(map(math.isfinite, stats)) and stats[1] > 0):
            raise ValueError(f"norm_stats must be [mean, std] with a finite mean and std > 0, not {norm_stats!r}")
        if head_dropout is not None and not 0 <= head_dropout < 1:
            raise ValueError(f"head_dropout must be null or in [0, 1), not {head_dropout!r}")
        if not 0 <= drop_path_rate < 1:
            raise ValueError(f"drop_path_rate must be in [0, 1), not {drop_path_rate!r}")
        self.norm_stats = stats
        self.uses_eeg = any(p["source"] == "eeg" for p in self.parts)
        self.mel = (MelSpectrogram(rate=EEG_RATE, n_fft=1024, win_length=128, hop_length=39, n_mels=EEG_MELS,
                                   fmin=0, fmax=20) if self.uses_eeg else None)
        self.pair_first, self.pair_second = chain_pairs()
        self.backbone = create_backbone(backbone, 1, pretrained, weights_path, drop_path_rate=drop_path_rate)
        self.num_features = self.backbone.num_features
        self.head = (nn.Linear(self.num_features, 6) if head_dropout is None
                     else DropoutLinear(self.num_features, 6, head_dropout))

    def planes(self, batch: dict, source: str, norm: str, cache: dict) -> torch.Tensor:
        """The 4 planes [B, 4, h, w] of a source under a norm, computed once per call of images()."""
        if (source, norm) not in cache:
            if source == "eeg":
                cache[source, norm] = eeg_planes(batch["eeg"], self.mel, self.pair_first, self.pair_second)
            else:
                if "log_spec" not in cache:
                    cache["log_spec"] = spectrogram_planes(batch["spec"])
                cache[source, norm] = normalise(cache["log_spec"], norm, self.norm_stats)
        return cache[source, norm]

    def images(self, batch: dict) -> torch.Tensor:
        """The image the backbone sees, [B, 1, H, W] in fp32: the parts left to right."""
        device = next(iter(batch[p["source"]] for p in self.parts)).device
        with torch.autocast(device.type, enabled=False):
            cache = {}
            columns = [plane_features(self.planes(batch, p["source"], p["norm"], cache), p["features"])
                       for p in self.parts]
            return torch.cat(columns, dim=-1)[:, None]

    def forward_features(self, batch: dict) -> torch.Tensor:
        return self.backbone(self.images(batch))

    def forward(self, batch: dict) -> dict:
        images = self.images(batch)
        out = {}
        if "image_mix" in batch:  # the loop's image mixing (same-class CutMix, mosaic): its target trains
            images, out["target"] = apply_image_mix(images, batch["target"], batch["image_mix"])
        return {"logits": self.head(self.backbone(images)), "aux": {}, **out}
