"""3rd place HMS 1-D model (cfg_2a / cfg_2b; RECIPES.md 2.2, 2.6, 2.10): an EEGNet-style CNN with CBAM
over the 16 interleaved bipolar pairs, GeM over the electrode rows, a post-LN Squeezeformer over the time
steps, GeM over time and a linear head.

    eeg [B, 20, 10000] -> pairs, NaN -> 0, (train) time reversal, left/right swap -> causal band-pass
    -> (train) random extra band-pass -> clip +-1024, /32 -> (train) montage drop   [B, 16, 10000]
    -> block_1 [B, 64, 16, 1249] -> block_2 [B, 128, 16, 624] -> CBAM -> block_3 [B, 128, 14, 624]
    -> block_4 [B, 128, 14, 312] -> GeM over rows: tokens [B, 312, 128] -> 3 Squeezeformer blocks
    -> GeM over time [B, 128] -> Linear -> 6 logits

The signal steps run in fp32 with autocast off, batched on the device, in the order of the published
1-D dataset (ds_2.py): the time reversal comes before the causal filter, so the filter's start-up
transient always sits at the start of the window the network sees.

Published quirks, as published by default, each with its fix as an option:
- `shared_gem=True`: one GeM module (one trainable p) pools the electrodes and the time steps; False
  gives each its own.
- `apply_dropouts=False`: `input_dropout` (0.1) and `attention_dropout` (0.2) are passed to the
  Squeezeformer but never used; True applies them (on the tokens before the first block, and on the
  attention probabilities).
"""
import math
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from hms.signal.filters import ORDER, PRESETS, SpectralFilter, random_band_pass
from hms.signal.montage import NodeDifferences


# ----------------------------------------------------------------------------------------------------
# Pooling and attention blocks of the CNN
# ----------------------------------------------------------------------------------------------------

class GeM(nn.Module):
    """Generalised mean over one dim: mean(clamp(x, eps)^p)^(1/p), p trainable (initial 3). In fp32:
    x^3 of fp16 activations overflows."""

    def __init__(self, p: float = 3.0, eps: float = 1e-6, trainable: bool = True):
        super().__init__()
        self.p = nn.Parameter(torch.tensor([float(p)]), requires_grad=trainable)
        self.eps = eps

    def forward(self, x: torch.Tensor, dim: int) -> torch.Tensor:
        return x.float().clamp(min=self.eps).pow(self.p).mean(dim).pow(1.0 / self.p)


class ChannelAttention(nn.Module):
    """CBAM channel gate: average- and max-pooled channels through one shared bias-free 1x1 MLP
    (channels -> channels/ratio -> channels), summed, sigmoid."""

    def __init__(self, channels: int, ratio: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Conv2d(channels, channels // ratio, 1, bias=False), nn.ReLU(),
                                 nn.Conv2d(channels // ratio, channels, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg, peak = x.mean((2, 3), keepdim=True), x.amax((2, 3), keepdim=True)
        return torch.sigmoid(self.mlp(avg) + self.mlp(peak))


class SpatialAttention(nn.Module):
    """CBAM spatial gate: the channel mean and max as 2 planes, one bias-free conv to 1 plane, sigmoid."""

    def __init__(self, kernel_size: int):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        planes = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], dim=1)
        return torch.sigmoid(self.conv(planes))


class CBAM(nn.Module):
    """Channel gate, then spatial gate, each multiplied into the features."""

    def __init__(self, channels: int, ratio: int = 4, kernel_size: int = 3):
        super().__init__()
        self.channel = ChannelAttention(channels, ratio)
        self.spatial = SpatialAttention(kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * self.channel(x)
        return x * self.spatial(x)


# ----------------------------------------------------------------------------------------------------
# The CNN front end: (B, 1, electrodes, time) -> (B, D*F1, electrodes - 2, time / 32)
# ----------------------------------------------------------------------------------------------------

class TemporalBlock(nn.Sequential):
    """block_1: zero-pad time, one bias-free temporal conv 1 -> F1 (kernel (1, k)), BN, ReLU, average
    pool over time."""

    def __init__(self, out_channels: int, kernel: int, padding, pool: int):
        super().__init__(OrderedDict(
            pad=nn.ZeroPad2d((padding[0], padding[1], 0, 0)),
            conv=nn.Conv2d(1, out_channels, (1, kernel), bias=False),
            bn=nn.BatchNorm2d(out_channels),
            act=nn.ReLU(inplace=True),
            pool=nn.AvgPool2d((1, pool))))


class SeparableBlock(nn.Sequential):
    """block_2, block_3, block_4: [zero-pad time] -> 1x1 conv in -> mid (groups) -> Swish -> depthwise
    conv (kernel, stride) -> BN -> Swish -> 1x1 conv mid -> out (groups) -> BN [-> average pool over time].
    No bias, no residual (as published). The padding comes before the 1x1 conv; a bias-free 1x1 conv and
    Swish keep zeros zero, so it pads the depthwise conv's input."""

    def __init__(self, in_channels: int, mid_channels: int, out_channels: int, kernel, stride=(1, 1),
                 padding=(0, 0), expand_groups: int = 1, project_groups: int = 1, pool: int = 1):
        layers = OrderedDict()
        if any(padding):
            layers["pad"] = nn.ZeroPad2d((padding[0], padding[1], 0, 0))
        layers["expand"] = nn.Conv2d(in_channels, mid_channels, 1, groups=expand_groups, bias=False)
        layers["expand_act"] = nn.SiLU()  # Swish
        layers["depthwise"] = nn.Conv2d(mid_channels, mid_channels, tuple(kernel), tuple(stride),
                                        groups=mid_channels, bias=False)
        layers["bn1"] = nn.BatchNorm2d(mid_channels)
        layers["act"] = nn.SiLU()
        layers["project"] = nn.Conv2d(mid_channels, out_channels, 1, groups=project_groups, bias=False)
        layers["bn2"] = nn.BatchNorm2d(out_channels)
        if pool > 1:
            layers["pool"] = nn.AvgPool2d((1, pool))
        super().__init__(layers)


class EEGNetFrontEnd(nn.Module):
    """block_1 -> block_2 -> CBAM -> block_3 -> block_4 (RECIPES 2.6 table). With F1 64, D 2, groups 4:
    16 x 10000 -> 64 x 16 x 1249 -> 128 x 16 x 624 -> 128 x 14 x 624 (the unpadded (3, 1) depthwise
    conv mixes neighbouring pair rows) -> 128 x 14 x 312."""

    def __init__(self, F1: int = 64, D: int = 2, groups: int = 4, temporal_kernel: int = 16,
                 temporal_padding=(7, 7), temporal_pool: int = 8, depthwise_kernel: int = 16,
                 depthwise_stride: int = 2, depthwise_padding=(7, 7), electrode_kernel: int = 3,
                 mix_kernel: int = 8, mix_padding=(4, 3), mix_pool: int = 2, cbam_ratio: int = 4,
                 cbam_kernel: int = 3):
        super().__init__()
        width, wide = D * F1, D * D * F1
        self.block_1 = TemporalBlock(F1, temporal_kernel, temporal_padding, temporal_pool)
        self.block_2 = SeparableBlock(F1, width, width, (1, depthwise_kernel), (1, depthwise_stride),
                                      depthwise_padding)
        self.cbam = CBAM(width, cbam_ratio, cbam_kernel)
        self.block_3 = SeparableBlock(width, wide, width, (electrode_kernel, 1), expand_groups=groups,
                                      project_groups=groups)
        self.block_4 = SeparableBlock(width, wide, width, (1, mix_kernel), padding=mix_padding,
                                      project_groups=groups, pool=mix_pool)
        self.out_channels = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # channels-last from here on: on a CPU the depthwise convs' backward is ~10x faster in NHWC
        # (oneDNN's NCHW depthwise backward is a slow path); the values are the same
        x = self.block_1(x).contiguous(memory_format=torch.channels_last)
        return self.block_4(self.block_3(self.cbam(self.block_2(x))))


# ----------------------------------------------------------------------------------------------------
# Squeezeformer: rotary attention, feed-forward and conv modules, the post-LN block
# ----------------------------------------------------------------------------------------------------

def rotary_tables(head_dim: int, max_positions: int, base: float = 10000.0, dtype=torch.float32):
    """Llama's rotary cos/sin tables [max_positions, head_dim]: frequency base^(-2i/head_dim) for
    i < head_dim/2, repeated for the second half (the rotate-half convention pairs dim i with i + d/2).
    Computed in fp32 like Llama's cache (float64 for exact checks)."""
    inv_freq = 1.0 / base ** (torch.arange(0, head_dim, 2, dtype=dtype) / head_dim)
    angles = torch.outer(torch.arange(max_positions, dtype=dtype), inv_freq)
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos(), angles.sin()


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """(x1, x2) -> (-x2, x1) on the two halves of the last dim."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x [..., T, head_dim] rotated by its position: each pair (i, i + d/2) by angle position * freq_i."""
    return x * cos + rotate_half(x) * sin


class RotaryAttention(nn.Module):
    """Llama-style multi-head self-attention: bias-free q, k, v, o; rotary position embedding on q and k
    from frozen tables (buffers: they follow .to() but are never trained); softmax in fp32."""

    def __init__(self, dim: int, heads: int, max_positions: int = 625, base: float = 10000.0,
                 dropout: float = 0.0):
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.q_proj = nn.Linear(dim, dim, bias=False)
        self.k_proj = nn.Linear(dim, dim, bias=False)
        self.v_proj = nn.Linear(dim, dim, bias=False)
        self.o_proj = nn.Linear(dim, dim, bias=False)
        self.dropout = nn.Dropout(dropout)  # on the attention probabilities; 0 as published
        cos, sin = rotary_tables(self.head_dim, max_positions, base)
        self.register_buffer("cos", cos, persistent=False)  # recomputed on build, not checkpointed
        self.register_buffer("sin", sin, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, dim = x.shape
        if t > self.cos.shape[0]:
            raise ValueError(f"{t} tokens exceed the rotary tables' max_positions {self.cos.shape[0]}")
        q, k, v = (proj(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)
                   for proj in (self.q_proj, self.k_proj, self.v_proj))
        cos, sin = self.cos[:t], self.sin[:t]
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        scores = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(self.head_dim)
        weights = self.dropout(F.softmax(scores, dim=-1, dtype=torch.float32).to(v.dtype))
        out = torch.matmul(weights, v).transpose(1, 2).reshape(b, t, dim)
        return self.o_proj(out)


class FeedForward(nn.Sequential):
    """Linear -> Swish -> Dropout -> Linear -> Dropout."""

    def __init__(self, dim: int, expansion: int, dropout: float):
        super().__init__(nn.Linear(dim, dim * expansion), nn.SiLU(), nn.Dropout(dropout),
                         nn.Linear(dim * expansion, dim), nn.Dropout(dropout))


class ConvModule(nn.Module):
    """On (B, T, C): pointwise conv C -> C*expansion, GLU (halves it), depthwise conv (same padding, no
    bias), BatchNorm1d, Swish, pointwise conv back to C, dropout. Expansion 2 (published) keeps the
    depthwise conv at C channels."""

    def __init__(self, dim: int, kernel_size: int, expansion: int, dropout: float):
        super().__init__()
        inner = dim * expansion // 2
        self.pointwise_1 = nn.Conv1d(dim, 2 * inner, 1)
        self.depthwise = nn.Conv1d(inner, inner, kernel_size, padding=(kernel_size - 1) // 2, groups=inner,
                                   bias=False)
        self.bn = nn.BatchNorm1d(inner)
        self.pointwise_2 = nn.Conv1d(inner, dim, 1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.glu(self.pointwise_1(x.transpose(1, 2)), dim=1)
        x = F.silu(self.bn(self.depthwise(x)))
        return self.dropout(self.pointwise_2(x)).transpose(1, 2)


class ScaleShift(nn.Module):
    """Learned per-channel x * s + b before each module (s = 1, b = 0 at init)."""

    def __init__(self, dim: int):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(dim))
        self.shift = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale.to(x.dtype) + self.shift.to(x.dtype)


class SqueezeformerBlock(nn.Module):
    """Post-LN: for each module M in (MHSA, FF, Conv, FF), x <- LN(x + M(scale_shift(x)))."""

    def __init__(self, dim: int, heads: int, ff_expansion: int = 1, conv_expansion: int = 2,
                 conv_kernel: int = 51, ff_dropout: float = 0.2, conv_dropout: float = 0.2,
                 attention_dropout: float = 0.0, max_positions: int = 625, rotary_base: float = 10000.0):
        super().__init__()
        self.attn = RotaryAttention(dim, heads, max_positions, rotary_base, attention_dropout)
        self.ff_attn = FeedForward(dim, ff_expansion, ff_dropout)
        self.conv = ConvModule(dim, conv_kernel, conv_expansion, conv_dropout)
        self.ff_conv = FeedForward(dim, ff_expansion, ff_dropout)
        names = ("attn", "ff_attn", "conv", "ff_conv")
        self.scales = nn.ModuleDict({n: ScaleShift(dim) for n in names})
        self.norms = nn.ModuleDict({n: nn.LayerNorm(dim) for n in names})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name in ("attn", "ff_attn", "conv", "ff_conv"):
            x = self.norms[name](x + getattr(self, name)(self.scales[name](x)))
        return x


# ----------------------------------------------------------------------------------------------------
# The model
# ----------------------------------------------------------------------------------------------------

class EEGSqueezeformer(nn.Module):
    """The 3rd place's 1-D model on batch["eeg"]; the published augmentations run here in training mode
    (the dataset does not flip electrodes for this family). Every published number is a kwarg (RECIPES
    2.6); the defaults are the published cfg_2a values."""

    def __init__(self,
                 # signal (RECIPES 2.2): filter preset, clip, scale; train-time augmentations
                 filter: str = "bandpass1.6-30_causal_o1", clip: float = 1024.0, scale: float = 32.0,
                 time_reverse_p: float = 0.5, swap_p: float = 0.5,
                 band_pass_p: float = 0.2, band_pass_max_channels: int = 8, band_pass_low=(1.6, 2.0),
                 band_pass_high=(10, 30), band_pass_order: int | None = None, band_pass_replace: bool = True,
                 montage_drop_p: float = 0.5, montage_drop_max: int = 8,
                 # CNN front end (RECIPES 2.6 table)
                 F1: int = 64, D: int = 2, conv_groups: int = 4, temporal_kernel: int = 16,
                 temporal_padding=(7, 7), temporal_pool: int = 8, depthwise_kernel: int = 16,
                 depthwise_stride: int = 2, depthwise_padding=(7, 7), electrode_kernel: int = 3,
                 mix_kernel: int = 8, mix_padding=(4, 3), mix_pool: int = 2, cbam_ratio: int = 4,
                 cbam_kernel: int = 3,
                 # Squeezeformer
                 dim: int = 128, heads: int = 4, blocks: int = 3, ff_expansion: int = 1,
                 conv_expansion: int = 2, conv_kernel: int = 51, ff_dropout: float = 0.2,
                 conv_dropout: float = 0.2, input_dropout: float = 0.1, attention_dropout: float = 0.2,
                 max_positions: int = 625, rotary_base: float = 10000.0,
                 # pooling
                 gem_p: float = 3.0, gem_eps: float = 1e-6, gem_trainable: bool = True,
                 # published quirks (True/False = as published) and their fixes
                 shared_gem: bool = True, apply_dropouts: bool = False):
        super().__init__()
        checks = [
            (filter in PRESETS, f"filter {filter!r} is not one of {sorted(PRESETS)}"),
            (dim == D * F1, f"dim {dim} must equal D * F1 = {D * F1} (the CNN's channels are the token width)"),
            (dim % heads == 0 and dim // heads % 2 == 0,
             f"dim {dim} must split into {heads} heads of an even head dim (rotary rotates half-pairs)"),
            (D * F1 % conv_groups == 0, f"conv_groups {conv_groups} must divide D * F1 = {D * F1}"),
            (dim % cbam_ratio == 0, f"cbam_ratio {cbam_ratio} must divide dim {dim}"),
            (conv_kernel % 2 == 1 and cbam_kernel % 2 == 1,
             f"conv_kernel {conv_kernel} and cbam_kernel {cbam_kernel} must be odd (same padding)"),
            (conv_expansion >= 1 and dim * conv_expansion % 2 == 0,
             f"conv_expansion {conv_expansion} must be >= 1 with dim * conv_expansion even (the GLU halves it)"),
            (1 <= electrode_kernel <= 16, f"electrode_kernel {electrode_kernel} must be in 1..16 (16 pair rows)"),
            (montage_drop_max >= 1, f"montage_drop_max {montage_drop_max} must be >= 1"),
            (all(0 <= p <= 1 for p in (time_reverse_p, swap_p, band_pass_p, montage_drop_p)),
             "time_reverse_p, swap_p, band_pass_p and montage_drop_p must be probabilities in [0, 1]"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

        # signal: the 16 interleaved pairs (2k left, 2k+1 its mirror) and the preset's causal band-pass
        self.pairs = NodeDifferences("interleaved16")
        self.filter = SpectralFilter(filter)
        self.clip, self.scale = clip, scale
        self.time_reverse_p, self.swap_p = time_reverse_p, swap_p
        self.band_pass_p, self.band_pass_max_channels = band_pass_p, band_pass_max_channels
        self.band_pass_replace = band_pass_replace  # the channels drawn with replacement, as published
        self.band_pass_low, self.band_pass_high = tuple(band_pass_low), tuple(band_pass_high)
        # ds_2.py: the extra band-pass has order max(butter_order, 1)
        self.band_pass_order = (max(PRESETS[filter].get("order", ORDER), 1) if band_pass_order is None
                                else band_pass_order)
        self.montage_drop_p, self.montage_drop_max = montage_drop_p, montage_drop_max
        n = self.pairs.num_differences
        self.register_buffer("swap_index", torch.arange(n).view(-1, 2).flip(1).flatten(), persistent=False)

        self.cnn = EEGNetFrontEnd(F1, D, conv_groups, temporal_kernel, temporal_padding, temporal_pool,
                                  depthwise_kernel, depthwise_stride, depthwise_padding, electrode_kernel,
                                  mix_kernel, mix_padding, mix_pool, cbam_ratio, cbam_kernel)
        self.electrode_pool = GeM(gem_p, gem_eps, gem_trainable)
        # quirk: the published model pools electrodes and time with the same GeM (one p)
        self.time_pool = self.electrode_pool if shared_gem else GeM(gem_p, gem_eps, gem_trainable)
        # quirk: input and attention dropout are configured but never applied as published
        self.input_dropout = nn.Dropout(input_dropout if apply_dropouts else 0.0)
        self.encoder = nn.Sequential(*(
            SqueezeformerBlock(dim, heads, ff_expansion, conv_expansion, conv_kernel, ff_dropout, conv_dropout,
                               attention_dropout if apply_dropouts else 0.0, max_positions, rotary_base)
            for _ in range(blocks)))
        self.head = nn.Linear(dim, 6)

    # -- signal: fp32, autocast off, batched on the device --------------------------------------------
    def signal(self, eeg: torch.Tensor) -> torch.Tensor:
        """eeg [B, 20, T] -> [B, 16, T] in /32 units, in the ds_2.py order; augmented in training."""
        with torch.autocast(eeg.device.type, enabled=False):
            x = self.pairs(eeg.float())
            x = torch.where(torch.isnan(x), torch.zeros_like(x), x)
            if self.training:
                x = self.time_reverse(x)
                x = self.swap_sides(x)
            x = self.filter(x)
            if self.training and self.band_pass_p > 0:
                x = random_band_pass(x, self.band_pass_p, self.band_pass_max_channels, self.band_pass_low,
                                     self.band_pass_high, self.band_pass_order,
                                     replace=self.band_pass_replace)
            return x.clamp(-self.clip, self.clip) / self.scale

    def _chosen(self, x: torch.Tensor, p: float) -> torch.Tensor:
        """[B, 1, 1] bool: which samples an augmentation of probability p applies to."""
        return (torch.rand(x.shape[0], device=x.device) < p).view(-1, 1, 1)

    def time_reverse(self, x: torch.Tensor) -> torch.Tensor:
        return torch.where(self._chosen(x, self.time_reverse_p), x.flip(-1), x)

    def swap_sides(self, x: torch.Tensor) -> torch.Tensor:
        """Left/right swap: pair columns 2k <-> 2k+1 (the interleaved order makes it the mirror)."""
        return torch.where(self._chosen(x, self.swap_p), x.index_select(1, self.swap_index), x)

    def drop_montages(self, x: torch.Tensor) -> torch.Tensor:
        """Training only: per sample with p, zero randint(1, max + 1) montages drawn with replacement."""
        if not self.training or self.montage_drop_p <= 0:
            return x
        b, n = x.shape[:2]
        count = torch.randint(1, self.montage_drop_max + 1, (b, 1), device=x.device)
        drawn = torch.randint(0, n, (b, self.montage_drop_max), device=x.device)
        used = (torch.arange(self.montage_drop_max, device=x.device) < count).float()  # the first `count` draws
        hits = torch.zeros(b, n, device=x.device).scatter_add_(1, drawn, used)  # a montage drawn twice: once
        dropped = (hits > 0) & self._chosen(x, self.montage_drop_p).view(b, 1)
        return x.masked_fill(dropped.unsqueeze(-1), 0.0)

    # -- network ---------------------------------------------------------------------------------------
    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 16, T] -> CNN -> GeM over the electrode rows -> tokens [B, T', dim]."""
        features = self.cnn(x.unsqueeze(1))  # [B, dim, 14, T']
        return self.electrode_pool(features, dim=2).transpose(1, 2)

    def forward(self, batch: dict) -> dict:
        x = self.drop_montages(self.signal(batch["eeg"]))
        x = self.encoder(self.input_dropout(self.tokens(x)))
        return {"logits": self.head(self.time_pool(x, dim=1)), "aux": {}}
