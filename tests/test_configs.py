"""Every option of every config group composes; every model family builds under every size and keeps
the model contract (hms/models/__init__.py). The lists come from conf/, never from this file."""
import pytest
import torch
from hydra.utils import instantiate

from tests.helpers import MODELS, REPO, SIZES, compose_config, input_batch, options

GROUPS = [g.name for g in sorted((REPO / "conf").iterdir()) if g.is_dir() and g.name not in ("hydra", "extractor")]
# (experiment presets are checked number by number in tests/recipes/)


@pytest.mark.parametrize("choice", [f"{g}={o}" for g in GROUPS for o in options(g)])
def test_every_option_composes(choice):
    cfg = compose_config(choice, "name=x")
    assert cfg.model._target_ and cfg.sampling.val_min_votes in (8, 9, 10)  # the recipes' high-vote lines


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("family", MODELS)
def test_every_family_builds_under_every_size(family, size):
    cfg = compose_config(f"model={family}", f"size={size}", "name=x")
    model = instantiate(cfg.model)
    assert sum(p.numel() for p in model.parameters()) > 0
    weights = getattr(model, "loss_weights", {})
    assert set(weights) <= {"main"} | set(getattr(model, "extractors", {}))


@pytest.mark.parametrize("family", MODELS)
def test_every_family_keeps_the_model_contract(family):
    torch.manual_seed(0)
    model = instantiate(compose_config(f"model={family}", "name=x").model)
    out = model(input_batch(2))
    assert set(out) == {"logits", "aux"} and out["logits"].shape == (2, 6)
    assert all(v.shape == (2, 6) for v in out["aux"].values())
    loss = out["logits"].sum() + sum(v.sum() for v in out["aux"].values())
    loss.backward()
    # an attention score's bias shifts every instance's score alike, which the softmax cancels: its gradient is
    # zero but for rounding (exactly zero in some runs), so it is the one parameter allowed none
    missing = [n for n, p in model.named_parameters() if p.requires_grad and not n.endswith("attention.score.bias")
               and (p.grad is None or not p.grad.abs().sum() > 0)]
    assert not missing, missing
    if hasattr(model, "forward_features"):  # an extractor: forward is head(forward_features)
        features = model.forward_features(input_batch(2))
        assert features.shape == (2, model.num_features) and model.head.out_features == 6


def test_the_published_recipes_are_named_after_themselves():
    for experiment in options("experiment"):
        assert compose_config(f"experiment={experiment}").name == experiment  # runs and blend inputs


def test_a_misspelt_override_fails():
    with pytest.raises(Exception, match="sampling.train_min_vote"):
        compose_config("sampling.train_min_vote=3")
