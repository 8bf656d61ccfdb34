"""KL losses on log-softmax, vote weights and the target tricks of the published recipes."""
import math

import torch
import torch.nn.functional as F


def kl_per_sample(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """KL(target || softmax(logits)) per row, in fp32; zero targets contribute 0, like Kaggle's metric."""
    log_pred = F.log_softmax(logits.float(), dim=1)
    return F.kl_div(log_pred, target.float(), reduction="none").sum(dim=1)


def vote_group_weights(n_votes: torch.Tensor, epoch: int, bounds=(3, 8), start=(0.3, 0.5), decay: float = 1.2,
                       epochs: int = 30, floor: float = 0.02) -> torch.Tensor:
    """3rd place (cfg_2a, data/ds_2.py:31-52, mdl_2.py:1134-1140): rows of < bounds[0] votes weigh
    start[0], of < bounds[1] start[1], the rest 1, the low weights falling as max(w (1 - decay e / epochs),
    floor) with the epoch e. The loss is the sum, over the distinct weights present in the batch, of the
    weight times the batch-mean KL of its rows; as per-sample weights of a batch mean that is w B / n_w."""
    n_votes = n_votes.float()
    low, mid = (max(w * (1 - decay * epoch / epochs), floor) for w in start)
    w = torch.where(n_votes < bounds[0], low, torch.where(n_votes < bounds[1], mid, 1.0))
    share = (w[:, None] == w[None, :]).float().sum(dim=1)  # rows sharing each row's weight value
    return w * len(w) / share


WEIGHTINGS = ("log_votes", "log1p_votes", "min10", "cmb_modified", "vote_groups", "none")


def vote_weights(n_votes: torch.Tensor, weighting: str, epoch: int = 0, vote_groups=None) -> torch.Tensor:
    """How much a row counts, from its number of votes (more raters, less noisy target)."""
    if weighting == "vote_groups":
        return vote_group_weights(n_votes, epoch, **dict(vote_groups))
    n_votes = n_votes.float()
    if weighting == "log_votes":  # 15th place: 1 vote -> 0.63, 2 -> 1, 15 -> 2.5
        return torch.log(n_votes + 1) / math.log(3)
    if weighting == "log1p_votes":  # Cranjis-McB 6a-7b (cell 20): 1 vote -> 0.693, 3 -> 1.386, 28 -> 3.367
        return torch.log(n_votes + 1)
    if weighting == "min10":  # Cranjis-McB's xloss (8a-9c), clamp(max=10): 1, 3, 9 -> 1, 3, 9; 10+ -> 10
        return n_votes.clamp(max=10)
    if weighting == "cmb_modified":  # Cranjis-McB 9b stage 2 (cell 31): v up to 10, then (10 + 2 log10 v) log10 v
        log10 = torch.log10(n_votes)
        return torch.where(n_votes > 10, (10 + 2 * log10) * log10, n_votes)
    if weighting == "none":
        return torch.ones_like(n_votes)
    raise ValueError(f"loss.weighting must be one of {WEIGHTINGS}, not {weighting!r}")


def smooth(target: torch.Tensor, amount: float) -> torch.Tensor:
    return target * (1 - amount) + amount / target.shape[1]


def weighted_kl(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Batch mean of weight x KL; divided by the batch size (not the weight sum) so that DDP shards and
    gradient accumulation average to exactly the full-batch loss."""
    return (kl_per_sample(logits, target) * weight).mean()


def model_loss(outputs: dict, target: torch.Tensor, weight: torch.Tensor, loss_weights: dict | None):
    """Main head plus auxiliary heads with their loss weights (fusion); just the main head otherwise."""
    if not outputs.get("aux"):
        return weighted_kl(outputs["logits"], target, weight)
    loss_weights = loss_weights or {}
    total = loss_weights.get("main", 1.0) * weighted_kl(outputs["logits"], target, weight)
    for name, logits in outputs["aux"].items():
        total = total + loss_weights.get(name, 0.0) * weighted_kl(logits, target, weight)
    return total
