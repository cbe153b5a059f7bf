"""Figures people would rather look at than read: a model's validation confusion matrix, and the
parity plot and residual histogram of property predictions against known targets. (Structure
maps: :mod:`ovito_mlclass.maps`; phase fractions over a trajectory: ``TrajectoryResult.plot``;
rendered frames: :mod:`ovito_mlclass.render`.)"""
from __future__ import annotations

from pathlib import Path

import numpy as np


def pyplot():
    """matplotlib's pyplot with a file backend (no display), or an error naming the extra."""
    from .extras import requires

    with requires("plots", "drawing a figure"):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    return plt


def plot_confusion(model, filename) -> Path:
    """A PNG of the validation confusion matrix stored in a model's metadata: rows the true class,
    columns the predicted class (and Other), each row as fractions of its atoms."""
    plt = pyplot()
    validation = model.metadata.get("validation", {})
    if "confusion" not in validation:
        raise ValueError(f"Model '{model.name}' holds no validation confusion matrix.")
    matrix = np.asarray(validation["confusion"], dtype=float)
    axes = validation.get("confusion_axes") or model.classes + ["Other"]
    rows = matrix.shape[0]
    fractions = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.2 + 0.62 * matrix.shape[1], 1.0 + 0.5 * rows), dpi=130)
    image = ax.imshow(fractions, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    for i in range(rows):
        for j in range(matrix.shape[1]):
            if matrix[i, j]:
                share = fractions[i, j]
                text = "<0.001" if share < 0.0005 else f"{share:.3f}"
                ax.text(j, i, text, ha="center", va="center", fontsize=7, color="white" if share > 0.6 else "black")
    ax.set_xticks(range(matrix.shape[1]), axes[:matrix.shape[1]], rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(rows), axes[:rows], fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true (held-out MD)")
    ax.set_title(f"{model.name}: validation, {int(matrix.sum()):,} atoms, balanced accuracy "
                 f"{validation.get('balanced_accuracy', float('nan')):.3f}", fontsize=8)
    fig.colorbar(image, ax=ax, fraction=0.04, label="fraction of the true class")
    fig.tight_layout()
    return _save(fig, filename)


def plot_parity(predicted, target, uncertainty, quantity: str, unit: str, filename) -> Path:
    """A PNG with the parity plot (prediction against target, ±1σ bars) and the histogram of the
    residuals, with the MAE and the share of targets within 1σ and 2σ."""
    plt = pyplot()
    predicted, target, sigma = (np.asarray(a, dtype=float) for a in (predicted, target, uncertainty))
    residual = predicted - target
    within = [np.mean(np.abs(residual) <= k * sigma) for k in (1, 2)]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 4.2), dpi=120)
    lo, hi = float(min(predicted.min(), target.min())), float(max(predicted.max(), target.max()))
    pad = 0.05 * (hi - lo or 1.0)
    left.plot([lo - pad, hi + pad], [lo - pad, hi + pad], "-", color="0.6", lw=1)
    left.errorbar(target, predicted, yerr=sigma, fmt="o", ms=3, alpha=0.6, elinewidth=0.6, color="tab:blue")
    left.set_xlabel(f"target {quantity} ({unit})")
    left.set_ylabel(f"predicted ({unit})")
    left.set_title(f"MAE {np.abs(residual).mean():.4f} {unit}; within 1σ {within[0]:.0%}, 2σ {within[1]:.0%}",
                   fontsize=9)
    right.hist(residual, bins=max(10, min(60, len(residual) // 4)), color="tab:blue", alpha=0.8)
    right.axvline(0, color="0.3", lw=1)
    right.set_xlabel(f"prediction − target ({unit})")
    right.set_ylabel("structures")
    fig.tight_layout()
    return _save(fig, filename)


def _save(fig, filename) -> Path:
    filename = Path(filename)
    filename.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(filename)
    pyplot().close(fig)
    return filename
