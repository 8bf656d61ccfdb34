"""GPU STFT extractor (15th place HMS): node differences -> nnAudio STFT on the device -> log power
image, restacked into columns -> a timm backbone -> 6 logits.

    eeg [B, 20, T] -> differences [B, D, T] -> |STFT|^2 [B, D, F, T'] (0..fmax Hz) -> log1p, clamp, scale
    -> stacked vertically [B, 1, D*F, T'] -> restacked into k columns [B, 1, D*F/k, k*T'] -> backbone
"""
import torch
from einops import rearrange
from torch import nn

from hms.models.backbone import create_backbone
from hms.signal.frontend import SignalFrontEnd
from hms.signal.spectra import BandLimitedSTFT

# Published (n_fft, win_length, hop_length) presets of the 15th-place solution.
STFT_PRESETS = {"fine": (110, 64, 23), "coarse": (190, 96, 24)}


def restack(image: torch.Tensor, columns: int, layout: str = "bands") -> torch.Tensor:
    """[B, C, H, W] -> [B, C, H/k, k*W], an exact rearrangement. layout "bands": the k row bands placed
    side by side (top band left). "adjacent": every k adjacent rows laid end to end (a row-major
    reshape; the 15th-place layout, so each difference's even bins sit left and its odd bins right)."""
    if layout == "bands":
        return rearrange(image, "b c (k h) w -> b c h (k w)", k=columns)
    if layout == "adjacent":
        return rearrange(image, "b c (h k) w -> b c h (k w)", k=columns)
    raise ValueError(f"restack layout must be 'bands' or 'adjacent', not {layout!r}")


class STFTExtractor(nn.Module):
    def __init__(self, montage: str = "groups24", filter: str = "lowpass50", clip: float = 1024,
                 scale: float = 32, nan_repair: str = "zero", clip_on: str = "differences", n_fft: int = 110, win_length: int = 64, hop_length: int = 23,
                 fmax: float = 40.0, trainable: bool = True, clamp=(0.0, 20.0), center: float = 7.5,
                 stack_order=None, columns: int = 2, restack: str = "bands", freq_scale: str = "no",
                 window: str = "hann", full_kernels: bool = False, feature_dropout: float = 0.0,
                 backbone: str = "test_efficientnet_gn", pretrained: bool = False,
                 weights_path: str | None = None, stem_stride=None, drop_path_rate: float = 0.0,
                 rate: int = 200):
        super().__init__()
        self.frontend = SignalFrontEnd(montage, filter, clip, scale, nan_repair, clip_on)
        n_diffs = self.frontend.montage.num_differences
        self.stack_order = list(stack_order) if stack_order is not None else list(range(n_diffs))
        if sorted(self.stack_order) != list(range(n_diffs)):
            raise ValueError(f"stack_order must be a permutation of the {n_diffs} differences")
        # 0..fmax Hz: the FFT bins up to fmax (freq_scale "no"), or nnAudio's n_fft//2+1 bins spread
        # evenly over it (freq_scale "linear", the 15th-place STFT)
        self.n_bins = int(fmax * n_fft / rate) + 1 if freq_scale == "no" else n_fft // 2 + 1
        rows = n_diffs * self.n_bins
        if rows % columns:
            raise ValueError(f"{n_diffs} differences x {self.n_bins} bins = {rows} rows do not split "
                             f"into {columns} columns")
        self.stft = BandLimitedSTFT(n_fft, win_length, hop_length, self.n_bins, trainable, rate, freq_scale, fmax,
                                    window, full_kernels)
        self.clamp, self.center, self.columns, self.layout = tuple(clamp), center, columns, restack
        self.dropout = nn.Dropout(feature_dropout)
        self.backbone = create_backbone(backbone, 1, pretrained, weights_path, stem_stride,
                                        drop_path_rate=drop_path_rate)
        self.num_features = self.backbone.num_features
        self.head = nn.Linear(self.num_features, 6)

    def image(self, eeg: torch.Tensor, augment: dict | None = None) -> torch.Tensor:
        """The log-power image the backbone sees, computed in fp32 (fp16 power overflows)."""
        with torch.autocast(eeg.device.type, enabled=False):
            diffs = self.frontend(eeg, augment)[:, self.stack_order]  # [B, D, T]
            b, d, t = diffs.shape
            power = torch.log1p(self.stft(diffs.reshape(b * d, t).float())).clamp(*self.clamp)  # [B*D, F, T']
            power = (power - self.center) / self.center
            image = rearrange(power, "(b d) f t -> b 1 (d f) t", b=b)
            return restack(image, self.columns, self.layout)

    def forward_features(self, batch: dict) -> torch.Tensor:
        return self.dropout(self.backbone(self.image(batch["eeg"], batch.get("difference_augment"))))

    def forward(self, batch: dict) -> dict:
        return {"logits": self.head(self.forward_features(batch)), "aux": {}}
