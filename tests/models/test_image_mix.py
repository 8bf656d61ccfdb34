"""Tests of hms/models/image_mix.py: the CMB same-class CutMix and mosaic (RECIPES.md section 4.4)."""
import pytest
import torch

from hms.models.image_mix import apply_image_mix, mosaic, same_class_cutmix


def _index_images(batch_size: int, height: int, width: int) -> torch.Tensor:
    """[B, 1, H, W] where image i holds the value i everywhere, so a copied band shows its source."""
    return torch.arange(batch_size, dtype=torch.float32).view(-1, 1, 1, 1).expand(-1, 1, height, width).clone()


def _one_hot(classes) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.tensor(classes), 6).float()


def _draws(seed: int, class_sizes, margin=50, min_size=25, max_size=75, span=300):
    """The documented draw order, replayed: per class with >= 2 members, randperm, coin, start, size."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for n in class_sizes:
        perm = torch.randperm(n, generator=g)
        coin = int(torch.randint(0, 2, (), generator=g))
        low, high = (0, margin) if coin == 0 else (span - max_size - margin, span - max_size)
        start = int(torch.randint(low, high + 1, (), generator=g))
        size = int(torch.randint(min_size, max_size + 1, (), generator=g))
        out.append((perm, start, size))
    return out


# Batch: class 0 = samples 0, 2, 5; class 3 = samples 1, 4; sample 3 alone in class 1.
CLASSES = [0, 3, 0, 1, 3, 0]
MEMBERS = {0: [0, 2, 5], 3: [1, 4]}


def _seed_with_swaps(class_sizes) -> int:
    """A seed whose permutations move at least one sample in every class, so the test is not vacuous."""
    for seed in range(100):
        if all((perm != torch.arange(len(perm))).any() for perm, _, _ in _draws(seed, class_sizes)):
            return seed
    raise AssertionError("no seed found")


@pytest.mark.parametrize("axis", ["height", "width"])
def test_cutmix_copies_exactly_the_drawn_band_from_a_same_class_partner(axis):
    images = _index_images(6, 400, 300)
    target = _one_hot(CLASSES)
    seed = _seed_with_swaps([3, 2])
    out = same_class_cutmix(images, target, torch.Generator().manual_seed(seed), axis=axis)

    assert torch.equal(target, _one_hot(CLASSES))  # the target is not touched
    assert torch.equal(images, _index_images(6, 400, 300))  # nor the input
    assert torch.equal(out[3], images[3])  # alone in its class
    for (c, members), (perm, start, size) in zip(MEMBERS.items(), _draws(seed, [3, 2])):
        for k, i in enumerate(members):
            partner = members[int(perm[k])]
            assert CLASSES[partner] == c
            expected = torch.full((1, 400, 300), float(i))
            if axis == "height":
                expected[:, start:start + size, :] = partner  # whole rows, all 300 columns
            else:
                expected[:, :, start:start + size] = partner  # whole columns, all 400 rows
            assert torch.equal(out[i], expected), (c, i)
    assert not torch.equal(out, images)


@pytest.mark.parametrize("axis", ["height", "width"])
@pytest.mark.parametrize("front", [True, False], ids=["front-start", "back-start"])
def test_cutmix_second_band_at_offset_300_is_clipped_at_the_edge(axis, front):
    images = _index_images(2, 400, 600)
    target = _one_hot([2, 2])
    # A seed where the pair swaps (sample 0 takes 1's bands, 1 takes 0's) and start is in the wanted range.
    seed = next(s for s in range(200) if _draws(s, [2])[0][0].tolist() == [1, 0]
                and (_draws(s, [2])[0][1] <= 50) == front)
    (_, start, size), = _draws(seed, [2])
    out = same_class_cutmix(images, target, torch.Generator().manual_seed(seed), second_band_offset=300, axis=axis)

    length = 400 if axis == "height" else 600
    copied = torch.zeros(length, dtype=torch.bool)
    copied[start:start + size] = True
    copied[300 + start:300 + start + size] = True  # a Python slice: on H it stops at row 400
    profile = torch.where(copied, 1.0, 0.0)
    expected = profile[:, None].expand(400, 600) if axis == "height" else profile[None, :].expand(400, 600)
    assert torch.equal(out[0, 0], expected)  # the bands span the other axis fully
    assert torch.equal(out[1], 1 - out[0])
    # Rows 300-399 of a 400-row image only get a (clipped) second band from a front start; columns always do.
    assert bool(copied[300:].any()) == (front or axis == "width")
    if axis == "height" and front:
        assert int(copied[300:].sum()) == min(size, 100 - start)


def test_cutmix_start_and_size_stay_in_the_inclusive_published_ranges():
    # Six classes of two samples: each call shows six bands (the swapped pairs); image i holds i.
    classes = [c for c in range(6) for _ in range(2)]
    images = _index_images(12, 300, 4)
    target = _one_hot(classes)
    starts, sizes = set(), set()
    for seed in range(600):
        out = same_class_cutmix(images, target, torch.Generator().manual_seed(seed))
        for c in range(6):
            rows = (out[2 * c, 0, :, 0] != 2 * c).nonzero()[:, 0]
            if len(rows) == 0:  # the pair was not swapped
                continue
            start, size = int(rows[0]), len(rows)
            assert torch.equal(rows, torch.arange(start, start + size))  # one contiguous band
            starts.add(start)
            sizes.add(size)
    assert starts <= set(range(0, 51)) | set(range(175, 226))
    assert sizes <= set(range(25, 76))
    assert {0, 50, 175, 225} <= starts  # both ends of both ranges occur: randint is inclusive
    assert {25, 75} <= sizes


def test_cutmix_reads_partner_bands_from_the_original_images():
    # Sample 0 is 0.5 class 0 / 0.5 class 1; samples 1 (class 0) and 2 (class 1) are its partners.
    images = _index_images(3, 400, 300)
    target = torch.tensor([[0.5, 0.5, 0, 0, 0, 0], [1.0, 0, 0, 0, 0, 0], [0, 1.0, 0, 0, 0, 0]])
    seed = _seed_with_swaps([2, 2])
    (_, start0, size0), (_, start1, size1) = _draws(seed, [2, 2])
    out = same_class_cutmix(images, target, torch.Generator().manual_seed(seed))

    # Class 0 band: sample 1 gets sample 0's ORIGINAL rows (0), not what class 1 later wrote there.
    band1 = torch.zeros(400, dtype=torch.bool)
    band1[start1:start1 + size1] = True
    expected0 = torch.zeros(400)
    expected0[start0:start0 + size0] = 1.0
    expected0[band1] = 2.0  # the later class wins on sample 0
    assert torch.equal(out[0, 0, :, 0], expected0)
    expected1 = torch.ones(400)
    expected1[start0:start0 + size0] = 0.0
    assert torch.equal(out[1, 0, :, 0], expected1)
    expected2 = torch.full((400,), 2.0)
    expected2[band1] = 0.0
    assert torch.equal(out[2, 0, :, 0], expected2)


def test_mosaic_pools_four_columns_and_tiles_four_drawn_samples():
    batch_size = 5
    # Image b: value 1000 * b + column, so the 4-column mean of block j is 1000 * b + 4 j + 1.5.
    ramp = torch.arange(300, dtype=torch.float32)
    images = (1000 * torch.arange(batch_size).float().view(-1, 1, 1, 1) + ramp).expand(-1, 1, 400, -1).clone()
    target = torch.softmax(torch.randn(batch_size, 6, generator=torch.Generator().manual_seed(0)), dim=1)

    out, mixed_target = mosaic(images, target, torch.Generator().manual_seed(3))
    idx = torch.randint(0, batch_size, (batch_size, 4), generator=torch.Generator().manual_seed(3))

    assert out.shape == (batch_size, 1, 400, 300)
    block_means = 4 * torch.arange(75).float() + 1.5
    for b in range(batch_size):
        for t in range(4):
            quarter = out[b, 0, :, 75 * t:75 * (t + 1)]
            assert torch.equal(quarter, (1000 * idx[b, t] + block_means).expand(400, 75))
        assert torch.allclose(mixed_target[b], target[idx[b]].mean(dim=0))
    assert torch.allclose(mixed_target.sum(dim=1), torch.ones(batch_size))
    assert len(set(idx.flatten().tolist())) > 1  # the draw really mixes samples


def test_mosaic_rejects_a_width_it_cannot_tile():
    with pytest.raises(ValueError, match="width 301"):
        mosaic(torch.zeros(2, 1, 400, 301), _one_hot([0, 1]), torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="width 600"):
        mosaic(torch.zeros(2, 1, 400, 600), _one_hot([0, 1]), torch.Generator().manual_seed(0), pool=4, tiles=2)


def test_apply_image_mix_is_reproducible_and_seed_dependent():
    images = torch.randn(8, 1, 400, 300, generator=torch.Generator().manual_seed(1))
    target = _one_hot([0, 0, 1, 1, 2, 2, 3, 3])
    for mix in ({"kind": "cutmix", "axis": "width"}, {"kind": "mosaic"}):
        first = apply_image_mix(images, target, {**mix, "seed": 7})
        again = apply_image_mix(images, target, {**mix, "seed": 7})
        other = apply_image_mix(images, target, {**mix, "seed": 8})
        assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
        assert not torch.equal(first[0], other[0])
    images_out, target_out = apply_image_mix(images, target, {"kind": "cutmix", "seed": 7, "threshold": 0.75})
    assert target_out is target
    assert torch.equal(images_out, same_class_cutmix(images, target, torch.Generator().manual_seed(7), threshold=0.75))


def test_apply_image_mix_rejects_unknown_kind_and_keyword():
    images, target = torch.zeros(2, 1, 400, 300), _one_hot([0, 0])
    with pytest.raises(ValueError, match="'mixup'.*cutmix.*mosaic"):
        apply_image_mix(images, target, {"kind": "mixup", "seed": 0})
    with pytest.raises(ValueError, match="'alpha'"):
        apply_image_mix(images, target, {"kind": "mosaic", "seed": 0, "alpha": 1.0})
    with pytest.raises(ValueError, match="'margin'"):
        apply_image_mix(images, target, {"kind": "mosaic", "seed": 0, "margin": 50})
