"""timm backbones for every extractor: any timm name, offline by default, local weights on request."""
import os

import timm
import torch
from torch import nn


class BackboneError(ValueError):
    """A backbone that cannot be built or loaded: the user's name or file (one line, no traceback)."""


def create_backbone(name: str, in_chans: int = 1, pretrained: bool = False, weights_path: str | None = None,
                    stem_stride=None, global_pool: str = "avg", drop_rate: float = 0.0,
                    drop_path_rate: float = 0.0, **timm_kwargs) -> nn.Module:
    """A timm model without classifier: pooled features [B, F] (global_pool "avg", "max", ...), or with
    global_pool "" the feature map it would pool ([B, F, H, W] for CNNs, tokens for ViTs); F is
    .num_features either way. drop_rate is the dropout before the (removed) classifier, drop_path_rate
    the stochastic depth of the blocks, both as timm defines them; timm_kwargs go to timm.create_model
    (e.g. img_size).

    pretrained=True takes timm's default weights of `name` from the Hugging Face cache, or downloads them;
    offline (HF_HUB_OFFLINE=1) with nothing cached it fails at once with one line. weights_path loads a
    local file instead (a state dict or a timm checkpoint; the first conv is adapted to in_chans by
    summing over input channels).
    stem_stride replaces the stride of the first convolution (e.g. 1 or (1, 2) for long time axes).
    """
    try:
        model = timm.create_model(name, pretrained=pretrained, num_classes=0, in_chans=in_chans,
                                  global_pool=global_pool, drop_rate=drop_rate, drop_path_rate=drop_path_rate,
                                  **timm_kwargs)
    except RuntimeError as error:  # timm: unknown model
        raise BackboneError(f"timm cannot build {name!r}: {str(error).splitlines()[0]}") from None
    except OSError:  # not cached, and the hub unreachable or HF_HUB_OFFLINE=1
        offline = " (HF_HUB_OFFLINE=1)" if os.environ.get("HF_HUB_OFFLINE") == "1" else ""
        raise BackboneError(f"pretrained weights for {name!r} are not in the local cache and cannot be "
                            f"downloaded{offline}: pre-download them (README, 'Pretrained weights offline'), "
                            "give the extractor's weights_path=<local file>, or run with pretrained=false") from None
    # Some heads (hgnetv2) project the features before the classifier (pooled or not): what forward()
    # returns with num_classes=0 is head_hidden_size wide, and that is what the extractors must size for.
    model.num_features = getattr(model, "head_hidden_size", None) or model.num_features
    if weights_path:
        load_local_weights(model, weights_path, in_chans)
    if stem_stride is not None:
        first_conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
        first_conv.stride = (stem_stride, stem_stride) if isinstance(stem_stride, int) else tuple(stem_stride)
    return model


def load_local_weights(model: nn.Module, path: str, in_chans: int) -> None:
    if not os.path.exists(path):
        raise BackboneError(f"{path}: weights file not found")
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = state.get("state_dict", state.get("model", state)) if isinstance(state, dict) else state
    own = model.state_dict()
    for key, value in list(state.items()):
        if key in own and value.dim() == 4 and own[key].dim() == 4 and value.shape[1] != own[key].shape[1]:
            # RGB weights for a 1-channel (or other) input: the sum keeps the response to a grey image
            summed = value.sum(dim=1, keepdim=True)
            state[key] = summed.repeat(1, own[key].shape[1], 1, 1) / own[key].shape[1]
    missing, unexpected = model.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
    if len(missing) == len(own):
        raise BackboneError(f"{path}: no tensor matches the backbone's parameters")
