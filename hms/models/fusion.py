"""Fusion head (15th place HMS): concatenate the features of any subset of extractors, a main linear
head, and every extractor's own head as an auxiliary output with its loss weight."""
import torch
from torch import nn


class Fusion(nn.Module):
    def __init__(self, extractors: dict, loss_weights: dict | None = None, dropout: float = 0.0):
        super().__init__()
        if not extractors:
            raise ValueError("fusion needs at least one extractor")
        self.extractors = nn.ModuleDict(extractors)
        self.num_features = sum(e.num_features for e in self.extractors.values())
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.num_features, 6)
        weights = dict(loss_weights or {})
        unknown = [k for k in weights if k != "main" and k not in self.extractors]
        if unknown:
            raise ValueError(f"model.loss_weights: {unknown[0]!r} names no extractor of this fusion "
                             f"(main, {', '.join(self.extractors)}); remove it with '~model.loss_weights.{unknown[0]}'")
        self.loss_weights = {k: float(v) for k, v in weights.items()}

    def forward(self, batch: dict) -> dict:
        features = {name: e.forward_features(batch) for name, e in self.extractors.items()}
        joined = torch.cat(list(features.values()), dim=1)
        aux = {name: self.extractors[name].head(f) for name, f in features.items()}
        return {"logits": self.head(self.dropout(joined)), "aux": aux}
