"""WaveNet-1D extractor (15th place HMS): each node difference is its own 1-channel sequence through a
WaveNet shared by its group; the outputs become one single-channel image for a timm backbone.

    eeg [B, 20, T] -> differences [B, D, T] -> per group: WaveNet on [B*d, 1, T] -> [B*d, C, T/s]
    -> image [B, 1, T/s, D*C] (time x (diffs x channels), last 2 channels of every diff at the end)
    -> backbone -> 6 logits
"""
import torch
import torch.nn.functional as F
from torch import nn

from hms.models.backbone import create_backbone
from hms.signal.frontend import SignalFrontEnd


class WaveBlock(nn.Module):
    """1x1 input conv, then dilated layers (1, 2, 4, ...) each multiplying sigmoid, tanh and Mish of
    three parallel convs, a 1x1 conv, and adding the block's input-conv output (not the last layer's)."""

    def __init__(self, in_channels: int, channels: int, layers: int, kernel_size: int = 3):
        super().__init__()
        self.inp = nn.Conv1d(in_channels, channels, 1)
        self.gates = nn.ModuleList()
        self.outs = nn.ModuleList()
        for i in range(layers):
            d = 2 ** i
            pad = d * (kernel_size - 1) // 2
            self.gates.append(nn.ModuleList(
                nn.Conv1d(channels, channels, kernel_size, padding=pad, dilation=d) for _ in range(3)))
            self.outs.append(nn.Conv1d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.inp(x)
        skip = x
        for (sig, tanh, mish), out in zip(self.gates, self.outs):
            x = out(torch.sigmoid(sig(x)) * torch.tanh(tanh(x)) * F.mish(mish(x))) + skip
        return x


class WaveNet(nn.Module):
    def __init__(self, channels=(4, 8, 12, 16, 20, 24, 24), layers=(15, 12, 10, 8, 5, 3, 1),
                 downsample: int = 5):
        super().__init__()
        ins = (1, *channels[:-1])
        self.blocks = nn.Sequential(*(WaveBlock(i, c, n) for i, c, n in zip(ins, channels, layers)))
        self.down = nn.Conv1d(channels[-1], channels[-1], downsample, stride=downsample)
        self.out_channels = channels[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(self.blocks(x))


def stack_image(features: torch.Tensor) -> torch.Tensor:
    """[B, D, C, T] -> [B, 1, T, D*C]: diffs side by side, channels 0..C-3 of every diff first, then the
    last 2 channels of every diff together at the end (the published layout)."""
    b, d, c, t = features.shape
    head = features[:, :, : c - 2].flatten(1, 2)
    tail = features[:, :, c - 2:].flatten(1, 2)
    return torch.cat([head, tail], dim=1).transpose(1, 2).unsqueeze(1)


class WaveNetExtractor(nn.Module):
    def __init__(self, montage: str = "groups24", filter: str = "lowpass50", clip: float = 1024,
                 scale: float = 32, nan_repair: str = "zero", clip_on: str = "differences", channels=(4, 8, 12, 16, 20, 24, 24), layers=(15, 12, 10, 8, 5, 3, 1),
                 downsample: int = 5, input_pool: int = 1, backbone: str = "test_efficientnet_gn",
                 pretrained: bool = False, weights_path: str | None = None, stem_stride=None,
                 drop_path_rate: float = 0.0, feature_dropout: float = 0.0):
        super().__init__()
        self.frontend = SignalFrontEnd(montage, filter, clip, scale, nan_repair, clip_on)
        self.groups = self.frontend.montage.groups
        self.input_pool = input_pool  # >1 averages the signal first (cheap CPU sizes only)
        self.wavenets = nn.ModuleList(WaveNet(channels, layers, downsample) for _ in self.groups)
        self.backbone = create_backbone(backbone, 1, pretrained, weights_path, stem_stride,
                                        drop_path_rate=drop_path_rate)
        self.num_features = self.backbone.num_features
        self.dropout = nn.Dropout(feature_dropout)
        self.head = nn.Linear(self.num_features, 6)

    def image(self, eeg: torch.Tensor, augment: dict | None = None) -> torch.Tensor:
        diffs = self.frontend(eeg, augment)
        if self.input_pool > 1:
            diffs = F.avg_pool1d(diffs, self.input_pool)
        b, _, t = diffs.shape
        per_group = []
        for group, wavenet in zip(self.groups, self.wavenets):
            x = diffs[:, group].reshape(b * len(group), 1, t)  # weights shared across the group
            per_group.append(wavenet(x).unflatten(0, (b, len(group))))  # [B, d, C, T']
        return stack_image(torch.cat(per_group, dim=1))

    def forward_features(self, batch: dict) -> torch.Tensor:
        return self.dropout(self.backbone(self.image(batch["eeg"], batch.get("difference_augment"))))

    def forward(self, batch: dict) -> dict:
        return {"logits": self.head(self.forward_features(batch)), "aux": {}}
