"""16th place HMS (mkotyushev/hms): the picture the voters saw, one 640 x 1920 grey image of the Kaggle
spectrogram, the EEG mel spectrogram and 20 EEG traces, into a vision transformer (timm tiny_vit_21m_512).

    eeg [B, 20, 10000] + spec [B, 300, 400] + eeg_mel [B, 226, 512] uint8
    -> rendered on the device (hms/signal/render.py) [B, 1, 640, 1920] in [0, 1]
    -> (train) brightness/contrast, one of noise / Gaussian blur / motion blur, 5 holes of 64 x 64
    -> backbone (1 input channel: timm sums the pretrained RGB stem) -> features -> Linear -> 6 logits

The flips (raw electrodes, spectrogram halves, EEG-mel chains) happen in the Dataset before rendering, as
the published transforms had them. The image augmentations follow albumentations 1.4.1 as the 16th place
called them (RECIPES.md 3.4), on float images in [0, 1]:
- RandomBrightnessContrast(0.1, 0.1), p 0.5: x * (1 + U(-0.1, 0.1)) + U(-0.1, 0.1), clipped to [0, 1];
- OneOf(GaussNoise(var_limit (0.1, 0.3)), GaussianBlur(3-7), MotionBlur(7)), p 0.4. [quirk] The variance
  is not rescaled for float images, so the noise has sigma 0.32-0.55 on a [0, 1] image, as published (our
  reading of the library); `noise_variance_scale` 1/255**2 is the guess at what was meant, off;
- CoarseDropout(5 holes of 64 x 64, fill 0), p 0.5 (albumentations' minima default to the maxima).
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

from hms.models.backbone import create_backbone
from hms.models.spec_augment import coarse_dropout, motion_blur
from hms.signal.render import Render16


def brightness_contrast(x: torch.Tensor, p: float, limit: float, generator=None) -> torch.Tensor:
    b = x.shape[0]
    chosen = (torch.rand(b, 1, 1, 1, generator=generator, device=x.device) < p).float()
    alpha = 1 + chosen * torch.empty(b, 1, 1, 1, device=x.device).uniform_(-limit, limit, generator=generator)
    beta = chosen * torch.empty(b, 1, 1, 1, device=x.device).uniform_(-limit, limit, generator=generator)
    return (x * alpha + beta).clamp(0.0, 1.0)


def gaussian_noise(x: torch.Tensor, variance, generator=None) -> torch.Tensor:
    """x + N(0, var) per pixel, var drawn per sample from `variance` (low, high), clipped to [0, 1]."""
    var = torch.empty(x.shape[0], 1, 1, 1, device=x.device).uniform_(*variance, generator=generator)
    return (x + var.sqrt() * torch.randn(x.shape, generator=generator, device=x.device)).clamp(0.0, 1.0)


def gaussian_blur(x: torch.Tensor, kernel: int) -> torch.Tensor:
    """cv2.GaussianBlur with sigma 0 (cv2 derives sigma = 0.3 ((k - 1) / 2 - 1) + 0.8), reflected borders."""
    sigma = 0.3 * ((kernel - 1) * 0.5 - 1) + 0.8
    t = torch.arange(kernel, device=x.device, dtype=x.dtype) - (kernel - 1) / 2
    g = torch.exp(-t ** 2 / (2 * sigma ** 2))
    g = g / g.sum()
    pad = kernel // 2
    x = F.conv2d(F.pad(x, (pad, pad, 0, 0), mode="reflect"), g.view(1, 1, 1, -1))
    return F.conv2d(F.pad(x, (0, 0, pad, pad), mode="reflect"), g.view(1, 1, -1, 1))


def one_of_noise_or_blur(x: torch.Tensor, p: float, variance, blur_kernels=(3, 5, 7), motion_kernels=(3, 5, 7),
                         generator=None) -> torch.Tensor:
    """With probability p per sample, one of Gaussian noise, Gaussian blur (an odd kernel of blur_kernels)
    or motion blur (albumentations' MotionBlur(7): an odd line kernel of 3..7), a third each."""
    b = x.shape[0]
    fires = torch.rand(b, generator=generator, device=x.device) < p
    which = torch.randint(0, 3, (b,), generator=generator, device=x.device)
    out = x
    noisy = fires & (which == 0)
    if noisy.any():
        out = torch.where(noisy.view(-1, 1, 1, 1), gaussian_noise(x, variance, generator), out)
    blurred = fires & (which == 1)
    if blurred.any():
        sizes = torch.tensor(blur_kernels, device=x.device)[
            torch.randint(0, len(blur_kernels), (b,), generator=generator, device=x.device)]
        for k in blur_kernels:
            use = blurred & (sizes == k)
            if use.any():
                out = torch.where(use.view(-1, 1, 1, 1), gaussian_blur(x, k), out)
    moved = fires & (which == 2)
    if moved.any():
        out = torch.where(moved.view(-1, 1, 1, 1), motion_blur(x, 1.0, motion_kernels, generator), out)
    return out


class ImageViT(nn.Module):
    def __init__(self, backbone: str = "test_efficientnet_gn", pretrained: bool = False, weights_path: str | None = None,
                 image_size=None, spec_column_order: str = "natural", brightness_contrast_p: float = 0.5,
                 brightness_contrast_limit: float = 0.1, noise_or_blur_p: float = 0.4, noise_variance=(0.1, 0.3),
                 noise_variance_scale: float = 1.0, holes_p: float = 0.5, holes: int = 5, hole_size: int = 64,
                 drop_path_rate: float = 0.1, backbone_kwargs: dict | None = None):
        super().__init__()
        self.render = Render16(spec_column_order=spec_column_order)
        self.image_size = tuple(image_size) if image_size else None  # resize (CPU-sized runs only)
        self.brightness_contrast_p, self.brightness_contrast_limit = brightness_contrast_p, brightness_contrast_limit
        self.noise_or_blur_p = noise_or_blur_p
        self.noise_variance = tuple(v * noise_variance_scale for v in noise_variance)
        self.holes_p, self.holes, self.hole_size = holes_p, holes, hole_size
        self.backbone = create_backbone(backbone, 1, pretrained, weights_path, drop_path_rate=drop_path_rate,
                                        **dict(backbone_kwargs or {}))
        self.num_features = self.backbone.num_features
        self.head = nn.Linear(self.num_features, 6)

    def image(self, batch: dict) -> torch.Tensor:
        with torch.autocast(batch["eeg"].device.type, enabled=False):
            x = self.render(batch["eeg"].float(), batch["spec"].float(), batch["eeg_mel"].float() / 255.0)
            if self.image_size and tuple(x.shape[-2:]) != self.image_size:
                x = F.interpolate(x, size=self.image_size, mode="bilinear", align_corners=False)
            if self.training:
                x = brightness_contrast(x, self.brightness_contrast_p, self.brightness_contrast_limit)
                x = one_of_noise_or_blur(x, self.noise_or_blur_p, self.noise_variance)
                hole = max(1, math.ceil(self.hole_size * x.shape[-1] / 1920))  # 64 px at full size
                x = coarse_dropout(x, self.holes_p, self.holes, hole, hole, exact=True)
            return x

    def forward_features(self, batch: dict) -> torch.Tensor:
        return self.backbone(self.image(batch))

    def forward(self, batch: dict) -> dict:
        return {"logits": self.head(self.forward_features(batch)), "aux": {}}
