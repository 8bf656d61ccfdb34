"""Mel 2-D CNN (3rd place HMS: cfg_1, cfg_3, cfg_4, cfg_5a-d): mel dB of 16 bipolar montages on the device,
a finer mel of the labelled centre spliced into it, three re-referenced dB planes, the montages stacked
into one image -> a timm backbone (fresh stem) -> GeM -> 6 logits. RECIPES.md 2.2-2.4 and 2.10.

    eeg [B, 20, T] -> montages [B, 16, T]: pairs, NaN -> 0, causal band-pass 0.5-20 Hz, (train) random
        extra band-pass, clip +-1024 uV, / 32
    -> main mel dB [B, 16, F, W]; zoom mel dB [B, 16, F, Wz] of the L samples about the centre, spliced
        over the 2 buff main columns about it -> [B, 16, F, W - 2 buff + Wz]
    -> planes [B, 16, 3, F, W']: x, x - mean of the other 15 montages, x - mean of 2 neighbour montages
    -> (train) montage drop -> image [B, 3, 16 F, W'] (the k-th montage of the order in rows F k .. F k + F - 1)
    -> backbone feature map -> GeM (trainable p) -> Linear -> 6 logits

The published configs as kwargs (presets in conf/experiment/; cfg_5b = 5a with drop_rate 0.3, cfg_5c = 5a
with montage_drop_p 0.7):

    cfg    mel (n_fft/win/hop, n_mels, f)   zoom (L, n_fft/win/hop)   top_db  planes  order       stem    jitter
    cfg_1  1024/128/39, 128, 0.53-40 Hz     none                      none    raw     interleaved kept    0
    cfg_3  512/128/32, 64, 0.53-30 Hz       none                      none    three   left_right  fresh   0
    cfg_4  as cfg_3                         2800, 2048/32/8           100     three   interleaved fresh   0
    cfg_5a as cfg_3                         2400, 2048/16/4           100     three   interleaved fresh   0.7
    cfg_5d as cfg_3                         2400, 2048/8/2            100     three   interleaved fresh   0.7
"""
import torch
from einops import rearrange
from torch import nn

from hms.models.backbone import create_backbone
from hms.signal.filters import SpectralFilter, random_band_pass
from hms.signal.montage import NodeDifferences
from hms.signal.spectra import DB_FLOORS, TorchaudioMel, amplitude_to_db

# The 2 montages each interleaved16 montage is re-referenced to (mdl_4.py:69-106): the adjacent links of
# its chain, or the matching link of the parallel chain.
NEIGHBOURS = [[2, 8], [3, 9], [4, 0], [5, 1], [6, 2], [7, 3], [14, 4], [15, 5],
              [10, 0], [11, 1], [12, 8], [13, 9], [14, 10], [15, 11], [6, 12], [7, 13]]
# The montages top to bottom in the image. interleaved16 alternates left (even) and right (odd) pairs;
# cfg_3 puts all left pairs above all right pairs (mdl_3.py:173).
MONTAGE_ORDERS = {"interleaved": list(range(16)), "left_right": list(range(0, 16, 2)) + list(range(1, 16, 2))}


def crop_about(x: torch.Tensor, centre: torch.Tensor, length: int) -> torch.Tensor:
    """x [B, C, T] -> [B, C, length]: each sample's `length` samples from clamp(centre - length // 2, 0,
    T - length), so the crop stays inside the window."""
    start = (centre - length // 2).clamp(0, x.shape[-1] - length)
    index = start[:, None] + torch.arange(length, device=x.device)
    return x.gather(-1, index[:, None].expand(-1, x.shape[1], -1))


def splice(main: torch.Tensor, zoom: torch.Tensor, centre: torch.Tensor, signal_length: int,
           fraction: float) -> torch.Tensor:
    """main [B, ..., W] with its 2 buff columns about the centre replaced by the whole zoom [B, ..., Wz]
    (mdl_4.py:178-187): c2 = floor(W centre / signal_length), buff = int(W fraction // 2), and columns
    [start, start + 2 buff) with start = clamp(c2 - buff, 0, W - 2 buff - 1) give way, so the output is
    W - 2 buff + Wz wide. One gather over [main | zoom], since every sample has its own start."""
    width, zoom_width = main.shape[-1], zoom.shape[-1]
    buff = int((width * fraction) // 2)
    start = ((width * centre) // signal_length - buff).clamp(0, width - 2 * buff - 1)[:, None]
    column = torch.arange(width - 2 * buff + zoom_width, device=main.device)[None]
    source = torch.where(column < start, column,
                         torch.where(column < start + zoom_width, width + column - start,
                                     column - zoom_width + 2 * buff))  # [B, W'] into [main | zoom]
    source = source.view(len(source), *[1] * (main.dim() - 2), -1).expand(*main.shape[:-1], -1)
    return torch.cat([main, zoom], dim=-1).gather(-1, source)


def re_referenced_planes(db: torch.Tensor) -> torch.Tensor:
    """[B, 16, F, W] -> [B, 16, 3, F, W]: x, x - mean of the other 15 montages, x - mean of its 2
    NEIGHBOURS (mdl_4.py:191-193). The mean of the others as (sum - x) / 15: one pass, not 15 copies."""
    others = (db.sum(dim=1, keepdim=True) - db) / (db.shape[1] - 1)
    neighbours = db[:, NEIGHBOURS].mean(dim=2)
    return torch.stack([db, db - others, db - neighbours], dim=2)


def drop_montages(x: torch.Tensor, p: float, max_count: int) -> torch.Tensor:
    """x [B, M, ...] with, per sample with probability p, randint(1, max_count + 1) montages drawn with
    replacement set to 0 in all planes (mdl_4.py:195-200; a montage drawn twice is dropped once)."""
    b, m = x.shape[:2]
    hit = torch.rand(b, device=x.device) < p
    count = torch.randint(1, max_count + 1, (b, 1), device=x.device)
    drawn = torch.randint(0, m, (b, max_count), device=x.device)
    used = ((torch.arange(max_count, device=x.device) < count) & hit[:, None]).float()
    # scatter_add, not scatter: an index repeated among used and unused draws keeps an arbitrary one of them
    dropped = torch.zeros(b, m, device=x.device).scatter_add_(1, drawn, used) > 0
    return x.masked_fill(dropped.view(b, m, *[1] * (x.dim() - 2)), 0.0)


def replace_stem(backbone: nn.Module, in_chans: int, name: str) -> None:
    """[quirk, as published for cfg_3/4/5x] the backbone's conv_stem replaced by a freshly initialised
    Conv2d(in_chans, its out channels, 3, stride 2, padding 1, no bias) (cfg_5a.py:88-90), so a pretrained
    stem is thrown away. The stride is the old stem's: 2 for mixnet, or stem_stride if one was given."""
    stem = getattr(backbone, "conv_stem", None)
    if not isinstance(stem, nn.Conv2d):
        raise ValueError(f"reinit_stem needs a backbone with a conv_stem Conv2d (EfficientNet, MixNet); {name!r} "
                         "has none: set reinit_stem=false")
    backbone.conv_stem = nn.Conv2d(in_chans, stem.out_channels, 3, stride=stem.stride, padding=1, bias=False)


class GeM(nn.Module):
    """Generalised-mean pooling [B, C, H, W] -> [B, C]: (mean of x^p)^(1/p), x clamped at eps, p trainable."""

    def __init__(self, p: float = 3.0, eps: float = 1e-6):
        super().__init__()
        self.p = nn.Parameter(torch.ones(1) * p)
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clamp(min=self.eps).pow(self.p).mean(dim=(-2, -1)).pow(1.0 / self.p)


class MelCNN(nn.Module):
    """Defaults: cfg_5a as published, with a timm test backbone. zoom_length None: no zoom (cfg_1, cfg_3);
    re_reference False: the raw dB plane only (cfg_1); db_floor "spectrogram": the fixed top_db floor;
    reinit_stem False: keep the backbone's (pretrained) stem (cfg_1). The augmentations (random extra
    band-pass, centre jitter, montage drop) act in training only; p 0 turns each off."""

    def __init__(self, filter: str = "bandpass0.5-20_causal_o2", clip: float = 1024.0, scale: float = 32.0,
                 band_pass_p: float = 0.2, band_pass_max_channels: int = 8, band_pass_low=(0.0001, 2.0),
                 band_pass_high=(10, 20), band_pass_order: int = 2, band_pass_replace: bool = True,
                 n_fft: int = 512, win_length: int = 128, hop_length: int = 32, n_mels: int = 64,
                 fmin: float = 0.53, fmax: float = 30.0, top_db: float | None = 100.0, db_floor: str = "batch",
                 zoom_length: int | None = 2400, zoom_n_fft: int = 2048, zoom_win_length: int = 16,
                 zoom_hop_length: int = 4, splice_fraction: float = 0.2, centre_jitter_p: float = 0.7,
                 re_reference: bool = True, montage_order: str = "interleaved",
                 montage_drop_p: float = 0.5, montage_drop_max: int = 8,
                 backbone: str = "test_efficientnet_gn", pretrained: bool = False, weights_path: str | None = None,
                 stem_stride=None, reinit_stem: bool = True, drop_rate: float = 0.2, drop_path_rate: float = 0.2,
                 gem_p: float = 3.0, gem_eps: float = 1e-6, rate: int = 200):
        super().__init__()
        if db_floor not in DB_FLOORS:
            raise ValueError(f"db_floor must be one of {DB_FLOORS}, not {db_floor!r}")
        if montage_order not in MONTAGE_ORDERS:
            raise ValueError(f"montage_order must be one of {sorted(MONTAGE_ORDERS)}, not {montage_order!r}")
        if zoom_length is not None and not zoom_n_fft // 2 < zoom_length:
            raise ValueError(f"zoom_length {zoom_length} must exceed zoom_n_fft // 2 = {zoom_n_fft // 2} "
                             "(reflect padding)")
        if zoom_length is not None and not 0 < splice_fraction < 1:
            raise ValueError(f"splice_fraction must be in (0, 1), not {splice_fraction}")
        if centre_jitter_p > 0 and zoom_length is None:
            raise ValueError("centre_jitter_p > 0 moves the zoom, so it needs a zoom_length")
        if montage_drop_p > 0 and montage_drop_max < 1:
            raise ValueError(f"montage_drop_max must be at least 1 when montage_drop_p > 0, not {montage_drop_max}")
        self.montages = NodeDifferences("interleaved16")  # NEIGHBOURS and MONTAGE_ORDERS index its 16 pairs
        self.filter = SpectralFilter(filter, rate=rate)
        self.clip, self.scale, self.rate = clip, scale, rate
        self.band_pass = dict(p=band_pass_p, max_channels=band_pass_max_channels, low_range=tuple(band_pass_low),
                              high_range=tuple(band_pass_high), order=band_pass_order, replace=band_pass_replace)
        self.mel = TorchaudioMel(rate, n_fft, win_length, hop_length, n_mels, fmin, fmax)
        self.zoom_mel = (None if zoom_length is None else
                         TorchaudioMel(rate, zoom_n_fft, zoom_win_length, zoom_hop_length, n_mels, fmin, fmax))
        self.top_db, self.db_floor = top_db, db_floor
        self.zoom_length, self.splice_fraction, self.centre_jitter_p = zoom_length, splice_fraction, centre_jitter_p
        self.re_reference = re_reference
        self.montage_order = MONTAGE_ORDERS[montage_order]
        self.montage_drop_p, self.montage_drop_max = montage_drop_p, montage_drop_max
        self.in_chans = 3 if re_reference else 1
        self.backbone = create_backbone(backbone, self.in_chans, pretrained, weights_path, stem_stride,
                                        global_pool="", drop_rate=drop_rate, drop_path_rate=drop_path_rate)
        if reinit_stem:
            replace_stem(self.backbone, self.in_chans, backbone)
        self.num_features = self.backbone.num_features
        self.pool = GeM(gem_p, gem_eps)
        self.head = nn.Linear(self.num_features, 6)

    def signals(self, eeg: torch.Tensor) -> torch.Tensor:
        """[B, 20, T] microvolts -> [B, 16, T] in /scale units, in the published order (ds_1.py:79-94)."""
        x = torch.nan_to_num(self.montages(eeg.float()), nan=0.0, posinf=0.0, neginf=0.0)  # pairs, then NaN -> 0
        x = self.filter(x)
        if self.training and self.band_pass["p"] > 0:
            x = random_band_pass(x, **self.band_pass, rate=self.rate)
        return x.clamp(-self.clip, self.clip) / self.scale

    def centres(self, batch: dict) -> torch.Tensor:
        """[B] sample index of the labelled centre (the window's middle when the batch has no "centre"),
        with (train, ds_1) probability centre_jitter_p moved to int(U(centre - L // 3, centre + L // 3))."""
        eeg = batch["eeg"]
        centre = batch.get("centre")
        centre = (torch.full((len(eeg),), eeg.shape[-1] // 2, device=eeg.device) if centre is None
                  else centre.to(eeg.device).long())
        if self.training and self.centre_jitter_p > 0:
            reach = self.zoom_length // 3
            moved = (centre - reach + 2 * reach * torch.rand(len(centre), device=centre.device, dtype=torch.float64))
            centre = torch.where(torch.rand(len(centre), device=centre.device) < self.centre_jitter_p,
                                 moved.long(), centre)  # .long() truncates like int()
        return centre

    def spectrogram(self, x: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
        """[B, 16, T] -> dB [B, 16, F, W']: the main mel, with the zoom spliced in if there is one. Each mel
        goes through dB as one (B*16, F, frames) stack, so the "batch" floor is per call (main, zoom)."""
        db = amplitude_to_db(self.mel(x), self.top_db, self.db_floor)
        if self.zoom_mel is None:
            return db
        if x.shape[-1] < self.zoom_length:
            raise ValueError(f"the zoom needs windows of at least zoom_length {self.zoom_length} samples, "
                             f"not {x.shape[-1]}")
        zoom = amplitude_to_db(self.zoom_mel(crop_about(x, centre, self.zoom_length)), self.top_db, self.db_floor)
        return splice(db, zoom, centre, x.shape[-1], self.splice_fraction)

    def image(self, batch: dict) -> torch.Tensor:
        """The image the backbone sees, [B, 3 (or 1), 16 F, W'], computed in fp32 (fp16 mel power overflows)."""
        eeg = batch["eeg"]
        with torch.autocast(eeg.device.type, enabled=False):
            db = self.spectrogram(self.signals(eeg), self.centres(batch))  # [B, 16, F, W']
            planes = re_referenced_planes(db) if self.re_reference else db[:, :, None]
            planes = planes[:, self.montage_order]
            if self.training and self.montage_drop_p > 0:
                planes = drop_montages(planes, self.montage_drop_p, self.montage_drop_max)
            return rearrange(planes, "b m c f w -> b c (m f) w")

    def forward_features(self, batch: dict) -> torch.Tensor:
        return self.pool(self.backbone(self.image(batch)))  # timm's drop_rate acts on the map before the pool

    def forward(self, batch: dict) -> dict:
        return {"logits": self.head(self.forward_features(batch)), "aux": {}}
