"""Cranjis-McB ("CMB") batch image mixes, on the device: same-class CutMix and the mosaic warm-up.

The input is a batch of images [B, C, H, W] (C = 1 in the CMB notebooks: H = 400 frequency / panel rows,
W = 300 time columns, or 600 with the EEG spectrogram beside the Kaggle one) with soft targets [B, 6].
Published code (Kaggle notebooks by Cranjis-McB, see /work/shared/RECIPES.md section 4.4):

- `same_class_cutmix`: `hbac_cutmix` of vote-weighted-kldiv-loss-cutmix (6a) cell 16, applied to a
  training batch with probability 0.4 (cell 23; that coin is the caller's job), and its time-axis
  variant in mosaic-xloss-global (8b) cell 22 (threshold 0.75, bands of at most 50, never enabled).
- `mosaic`: `hbac_mosaic` of mosaic-xloss (8a) cell 19, replacing every batch during the first
  MOSAIC_WARMUP_EPOCHS (cell 22).
- `apply_image_mix`: a config-driven dispatcher for models, mix = {"kind": ..., "seed": ..., **kwargs}.

All random draws come from an explicit torch.Generator (a CPU one is fine whatever the images' device),
in the order each docstring gives, so a seed reproduces a batch exactly. The inputs are never modified
in place.
"""
import inspect
from collections.abc import Mapping

import torch


def _check_images(images: torch.Tensor, target: torch.Tensor) -> None:
    if images.dim() != 4:
        raise ValueError(f"expected images of shape [batch, channels, height, width], got {tuple(images.shape)}")
    if target.dim() != 2 or target.shape[0] != images.shape[0]:
        raise ValueError(f"expected target of shape [{images.shape[0]}, classes], got {tuple(target.shape)}")


def _randint(low: int, high: int, generator) -> int:
    """One integer in [low, high], both inclusive, like Python's random.randint used by the notebooks."""
    device = generator.device if generator is not None else "cpu"
    return int(torch.randint(low, high + 1, (), generator=generator, device=device))


# ----------------------------------------------------------------------------------------------------
# Same-class CutMix


def same_class_cutmix(images: torch.Tensor, target: torch.Tensor, generator=None, threshold: float = 0.5,
                      margin: int = 50, min_size: int = 25, max_size: int = 75, span: int = 300,
                      second_band_offset: int | None = None, axis: str = "height") -> torch.Tensor:
    """Same-class CutMix (CMB `hbac_cutmix`, 6a cell 16; time-axis variant 8b cell 22): swap one band
    between samples of the same class; the target is not mixed, so only the images are returned.

    For each class c = 0, 1, ... in order, the members are the samples with target[:, c] >= threshold;
    a class with fewer than 2 members is skipped and draws nothing. Otherwise, from `generator`, in order:
      1. perm = torch.randperm(n): member k takes its band from member perm[k] (possibly itself);
      2. a coin torch.randint(0, 2): 0 -> start = randint(0, margin),
         1 -> start = randint(span - max_size - margin, span - max_size);
      3. size = randint(min_size, max_size);
    every randint inclusive at both ends (the notebooks use Python's random.randint), so the published
    defaults give start in [0, 50] or [175, 225] and size in [25, 75]. The band [start, start + size)
    is copied from the partner and, with `second_band_offset` (300 for the notebook's cut_eeg_spec=True),
    so is [start + offset, start + offset + size); both are clipped at the image edge like Python slices.

    The partner's band is always read from the original images (the notebook reads `data` and writes
    into a clone), so a sample that is a member of two classes (0.5 / 0.5) ends with the later class's
    band where the two overlap.

    `axis`: "height" is the published quirk: the notebook's member indices have shape (n, 1), which adds
    an axis, so its `[..., start:start + size]` slice lands on H (frequency / panel rows) rather than on
    time, and the +300 band falls on rows 300-399 of a 400-row image. "width" is the fix: bands of time
    columns, as in the never-enabled 8b version.
    """
    _check_images(images, target)
    if axis not in ("height", "width"):
        raise ValueError(f"axis must be 'height' or 'width', got {axis!r}")
    if not 0 <= min_size <= max_size or span - max_size - margin < 0:
        raise ValueError(f"need 0 <= min_size <= max_size and margin + max_size <= span, got "
                         f"min_size={min_size}, max_size={max_size}, margin={margin}, span={span}")
    draw_device = generator.device if generator is not None else "cpu"
    out = images.clone()
    dim = 2 if axis == "height" else 3  # the H or W axis of [B, C, H, W]
    for c in range(target.shape[1]):
        members = torch.nonzero(target[:, c] >= threshold)[:, 0].to(images.device)
        if len(members) < 2:
            continue
        perm = torch.randperm(len(members), generator=generator, device=draw_device).to(images.device)
        partners = members[perm]
        if _randint(0, 1, generator) == 0:
            start = _randint(0, margin, generator)
        else:
            start = _randint(span - max_size - margin, span - max_size, generator)
        size = _randint(min_size, max_size, generator)
        bands = [start] if second_band_offset is None else [start, start + second_band_offset]
        for band_start in bands:
            # A Python slice clips at the image edge, as the notebook's did: a band past H or W shrinks or empties.
            write = [slice(None)] * 4
            write[dim] = slice(band_start, band_start + size)
            read = list(write)
            write[0], read[0] = members, partners
            out[tuple(write)] = images[tuple(read)]
    return out


# ----------------------------------------------------------------------------------------------------
# Mosaic


def mosaic(images: torch.Tensor, target: torch.Tensor, generator=None, tiles: int = 4,
           pool: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """Mosaic warm-up (CMB `hbac_mosaic`, 8a cell 19): not a 2x2 mosaic but a strip of `tiles` samples
    squeezed along time.

    Each image is average-pooled over non-overlapping `pool`-column time blocks (W -> W // pool, the
    notebook's per-4-column mean: 400 x 300 -> 400 x 75). One draw from `generator`:
    idx = torch.randint(0, B, (B, tiles)), batch indices with replacement; output image b is the pooled
    images idx[b, 0], ..., idx[b, tiles - 1] side by side along the width, and its target is the mean of
    their targets. Requires W == (W // pool) * tiles (300 = 75 x 4) so the strip is W columns again.
    """
    _check_images(images, target)
    batch_size, channels, height, width = images.shape
    pooled_width = width // pool
    if pooled_width * tiles != width:
        raise ValueError(f"mosaic needs image width == (width // pool) * tiles, got width {width} "
                         f"with pool {pool} and tiles {tiles}")
    draw_device = generator.device if generator is not None else "cpu"
    idx = torch.randint(0, batch_size, (batch_size, tiles), generator=generator, device=draw_device)
    # Only the first pooled_width blocks are used, like the notebook's loop over range(75).
    pooled = images[..., :pooled_width * pool].reshape(batch_size, channels, height, pooled_width, pool).mean(dim=-1)
    strips = pooled[idx.to(images.device)]  # [B, tiles, C, H, W // pool]
    mixed = strips.permute(0, 2, 3, 1, 4).reshape(batch_size, channels, height, width)
    mixed_target = target[idx.to(target.device)].mean(dim=1)
    return mixed, mixed_target


# ----------------------------------------------------------------------------------------------------

_MIXES = {"cutmix": same_class_cutmix, "mosaic": mosaic}


def apply_image_mix(images: torch.Tensor, target: torch.Tensor, mix: Mapping) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply the mix a config describes: mix = {"kind": "cutmix" | "mosaic", "seed": int, **kwargs of
    that function}; the draws come from a CPU torch.Generator seeded with mix["seed"], so the caller
    should change the seed from batch to batch. Returns (images, target); cutmix leaves target as it is."""
    options = dict(mix)
    kind = options.pop("kind", None)
    if kind not in _MIXES:
        raise ValueError(f"unknown image mix kind {kind!r}; known kinds: {sorted(_MIXES)}")
    if "seed" not in options:
        raise ValueError(f"image mix {kind!r} needs a 'seed'")
    generator = torch.Generator().manual_seed(int(options.pop("seed")))
    function = _MIXES[kind]
    allowed = set(inspect.signature(function).parameters) - {"images", "target", "generator"}
    for name in options:
        if name not in allowed:
            raise ValueError(f"unknown keyword {name!r} for image mix {kind!r}; allowed: {sorted(allowed)}")
    if kind == "cutmix":
        return function(images, target, generator, **options), target
    return function(images, target, generator, **options)
