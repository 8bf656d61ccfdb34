"""What a composed model is made of: per extractor, the tensor its backbone sees, its feature width and
its parameter count (scripts/describe_model.py prints it). The backbone is never run: a hook records
its input and stops there, so published sizes are described in seconds on a CPU, without weights."""
import torch
from torch import nn


class _Seen(Exception):
    pass


def _backbone_input(extractor: nn.Module, batch: dict) -> tuple | None:
    """The shape of the tensor `extractor.backbone` receives on `batch`, or None without a backbone."""
    backbone = getattr(extractor, "backbone", None)
    if backbone is None:
        return None
    seen = {}

    def record(module, args):
        seen["shape"] = tuple(args[0].shape)
        raise _Seen

    handle = backbone.register_forward_pre_hook(record)
    try:
        extractor.forward_features(batch)
    except _Seen:
        pass
    finally:
        handle.remove()
    return seen.get("shape")


@torch.no_grad()
def describe(model: nn.Module, batch: dict) -> list[dict]:
    """One row per extractor (the fusion's, or the model itself), then a total row."""
    model.eval()
    parts = dict(model.extractors) if hasattr(model, "extractors") else {"model": model}
    rows = []
    for name, part in parts.items():
        backbone = getattr(part, "backbone", None)
        rows.append({
            "extractor": name,
            "backbone": getattr(backbone, "default_cfg", {}).get("architecture", type(backbone).__name__)
            if backbone is not None else "-",
            "backbone_input": _backbone_input(part, batch) if hasattr(part, "forward_features") else None,
            "features": getattr(part, "num_features", None),
            "parameters": sum(p.numel() for p in part.parameters()),
        })
    rows.append({"extractor": "total", "backbone": "", "backbone_input": None,
                 "features": getattr(model, "num_features", None),
                 "parameters": sum(p.numel() for p in model.parameters())})
    return rows


def format_table(rows: list[dict]) -> str:
    lines = [f"{'extractor':10s} {'backbone':24s} {'backbone input':22s} {'features':>8s} {'parameters':>12s}"]
    for r in rows:
        shape = "x".join(map(str, r["backbone_input"])) if r["backbone_input"] else ""
        lines.append(f"{r['extractor']:10s} {r['backbone']:24s} {shape:22s} {r['features'] or '':>8} "
                     f"{r['parameters']:>12,}")
    return "\n".join(lines)
