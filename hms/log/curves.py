"""The learning-curves PNG of a run: training loss and validation KL per epoch, with the prior and
Bayes floors when known."""
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_curves(history: list[dict], path: Path, prior_kl: float | None = None,
                bayes_kl: float | None = None) -> None:
    epochs = [h["epoch"] + 1 for h in history]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(epochs, [h["train_loss"] for h in history], "o-", label="train loss (weighted KL)")
    if any("val_kl" in h for h in history):
        ax.plot(epochs, [h.get("val_kl") for h in history], "o-", label="val KL (10+ votes)")
        ax.plot(epochs, [h.get("val_kl_all") for h in history], "o--", label="val KL (all rows)")
    for value, label, style in ((prior_kl, "prior KL", ":"), (bayes_kl, "Bayes KL", "-.")):
        if value is not None:
            ax.axhline(value, linestyle=style, color="gray", label=f"{label} {value:.3f}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("KL")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
