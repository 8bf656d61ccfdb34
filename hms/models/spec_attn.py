"""Attention-pooled Kaggle spectrogram extractor (15th place HMS): the 10 min spectrogram's 4 regions
plus their 6 pairwise differences are 10 instances; one shared timm backbone embeds each; attention-MIL
pooling (plain or gated) weighs them.

    spec [B, 300, 400] -> 4 regions [B, 4, 300, 100] -> + 6 differences [B, 10, 300, 100] -> normalised
    -> (optional pooling) -> backbone per instance [B*10, F] -> attention weights [B, 10] -> [B, F]

Two ways to make the instances (`instance_mode`):
- "fixed_log": differences of log power, one fixed normalisation (the public spectrogram notebooks);
- "linear_zscore" (15th place as published): differences of linear power, every instance clipped to
  [e^-7, e^10] and logged (so a negative difference saturates at -7), then one z-score per sample over
  all 10 instances (population std + 1e-6), clipped to +-16.
"""
from itertools import combinations

import torch
import torch.nn.functional as F
from torch import nn

from hms.models.backbone import create_backbone
from hms.models.spec_augment import spectrogram_augment

N_REGIONS = 4
PAIRS = list(combinations(range(N_REGIONS), 2))  # the 6 pairwise differences
# One fixed normalisation of log power for every image (the public spectrogram notebooks found it
# better than a per-image z-score).
LOG_MEAN, LOG_STD = -0.083, 1.907


def instances(spec: torch.Tensor, mode: str = "fixed_log", region_order=(0, 1, 2, 3)) -> torch.Tensor:
    """[B, T, 400] Kaggle power (regions LL, RL, LP, RP) -> [B, 10, T, 100]: the regions in
    `region_order`, then the differences region i - region j for i < j in that order."""
    power = torch.nan_to_num(spec.float(), nan=0.0).unflatten(-1, (N_REGIONS, -1)).transpose(1, 2)  # [B, 4, T, 100]
    regions = power[:, list(region_order)]
    if mode == "fixed_log":
        log = torch.log(regions.clamp(min=torch.e ** -4, max=torch.e ** 8))
        diffs = torch.stack([log[:, i] - log[:, j] for i, j in PAIRS], dim=1)
        return torch.cat([(log - LOG_MEAN) / LOG_STD, diffs / LOG_STD], dim=1)
    if mode == "linear_zscore":
        diffs = torch.stack([regions[:, i] - regions[:, j] for i, j in PAIRS], dim=1)
        x = torch.log(torch.cat([regions, diffs], dim=1).clamp(min=torch.e ** -7, max=torch.e ** 10))
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        std = x.std(dim=(1, 2, 3), keepdim=True, correction=0) + 1e-6
        return ((x - mean) / std).clamp(-16.0, 16.0)
    raise ValueError(f"instance_mode must be 'fixed_log' or 'linear_zscore', not {mode!r}")


class AttentionPool(nn.Module):
    """Attention-MIL: softmax over instances of a small MLP score; gated adds a sigmoid branch.

    Training drops instance weights with probability `dropout`: renormalise=True rescales the survivors
    to sum to 1; False is plain inverted dropout on the weights (survivors x 1/(1-p), sums vary), as the
    15th place had it."""

    def __init__(self, dim: int, hidden: int = 128, gated: bool = False, dropout: float = 0.0,
                 renormalise: bool = True):
        super().__init__()
        self.value = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh())
        self.gate = nn.Sequential(nn.Linear(dim, hidden), nn.Sigmoid()) if gated else None
        self.score = nn.Linear(hidden, 1)  # its bias is kept for the published weights; softmax ignores it
        self.dropout, self.renormalise = dropout, renormalise

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        h = self.value(x)
        if self.gate is not None:
            h = h * self.gate(x)
        w = self.score(h).squeeze(-1).softmax(dim=1)  # [B, N]
        if self.training and self.dropout > 0 and not self.renormalise:
            return F.dropout(w, self.dropout)
        if self.training and self.dropout > 0:  # drop instances, renormalise what is left
            keep = (torch.rand_like(w) >= self.dropout).float()
            keep[keep.sum(dim=1) == 0] = 1.0
            w = w * keep
            w = w / w.sum(dim=1, keepdim=True)
        return w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.weights(x).unsqueeze(-1) * x).sum(dim=1)


def edge_dropout(images: torch.Tensor, max_fraction: float) -> torch.Tensor:
    """Zero a random number of time rows (up to max_fraction) at each end of every image: the label is
    about the centre, so the model must not lean on the edges."""
    b, n, t = images.shape[:3]
    limit = int(max_fraction * t)
    if limit == 0:
        return images
    cut_top = torch.randint(0, limit + 1, (b, 1, 1), device=images.device)
    cut_bottom = torch.randint(0, limit + 1, (b, 1, 1), device=images.device)
    rows = torch.arange(t, device=images.device).view(1, 1, t)
    keep = (rows >= cut_top) & (rows < t - cut_bottom)
    return images * keep.unsqueeze(-1)


def keep_central_fraction(images: torch.Tensor, low: float = 0.05) -> torch.Tensor:
    """Keep a central run of time rows, a fraction U(low, 1) of them symmetric about the centre, and zero
    the rest (the 15th-place README's "heavy dropout to the edges (0-95%)", which its code never ran)."""
    b, t = images.shape[0], images.shape[2]
    half = torch.empty(b, 1, 1, device=images.device).uniform_(low, 1.0) * t / 2
    rows = (torch.arange(t, device=images.device) + 0.5 - t / 2).abs().view(1, 1, t)
    return images * (rows <= half).unsqueeze(-1)


class SpecAttnExtractor(nn.Module):
    def __init__(self, backbone: str = "test_efficientnet_gn", pretrained: bool = False,
                 weights_path: str | None = None, pool=(1, 1), gated: bool = False, hidden: int = 128,
                 attention_dropout: float = 0.1, renormalise_attention: bool = True,
                 edge_dropout: float = 0.25, central_keep_min: float | None = None,
                 instance_mode: str = "fixed_log", region_order=(0, 1, 2, 3),
                 instance_dropout: float = 0.0, augment: dict | None = None, stem_stride=None,
                 drop_path_rate: float = 0.0):
        super().__init__()
        self.pool, self.instance_mode, self.region_order = tuple(pool), instance_mode, tuple(region_order)
        self.backbone = create_backbone(backbone, 1, pretrained, weights_path, stem_stride,
                                        drop_path_rate=drop_path_rate)
        self.num_features = self.backbone.num_features
        self.instance_dropout = nn.Dropout(instance_dropout)  # on each instance's feature vector
        self.augment = dict(augment or {})  # spectrogram_augment's keywords; none: no augmentation
        self.central_keep_min = central_keep_min  # None: off
        self.attention = AttentionPool(self.num_features, hidden, gated, attention_dropout, renormalise_attention)
        self.edge_dropout = edge_dropout
        self.head = nn.Linear(self.num_features, 6)

    def images(self, spec: torch.Tensor) -> torch.Tensor:
        with torch.autocast(spec.device.type, enabled=False):
            x = instances(spec, self.instance_mode, self.region_order)  # [B, 10, T, 100]
            if self.training and self.augment:
                x = spectrogram_augment(x, **self.augment)
            if self.training and self.edge_dropout > 0:
                x = edge_dropout(x, self.edge_dropout)
            if self.training and self.central_keep_min is not None:
                x = keep_central_fraction(x, self.central_keep_min)
            if self.pool != (1, 1):
                x = F.avg_pool2d(x, self.pool)
            return x

    def forward_features(self, batch: dict) -> torch.Tensor:
        x = self.images(batch["spec"])
        b, n = x.shape[:2]
        features = self.backbone(x.flatten(0, 1).unsqueeze(1)).view(b, n, -1)
        return self.attention(self.instance_dropout(features))

    def forward(self, batch: dict) -> dict:
        return {"logits": self.head(self.forward_features(batch)), "aux": {}}
