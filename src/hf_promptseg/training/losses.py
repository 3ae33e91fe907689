"""Mask losses on logits, combinable by name: `"bce+iou"` (SAM-Adapter's default), `"bbce"`, `"dice"`, `"focal"`.

Targets may be soft (SAM-Adapter does not binarise its ground truth). Every term is a scalar mean over the batch.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def bce_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, targets)


def soft_iou_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """1 − Σpg / Σ(p + g − pg) per sample, averaged (the reference's `_iou_loss`)."""
    probability = logits.sigmoid().flatten(1)
    targets = targets.flatten(1)
    intersection = (probability * targets).sum(1)
    union = (probability + targets).sum(1) - intersection
    return (1 - intersection / union.clamp(min=1e-6)).mean()


def balanced_bce_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """BCE with positives weighted by n_neg/n_pos over the batch, scaled by n_pos/(n_pos+n_neg) (shadow detection)."""
    positives = targets.sum()
    negatives = targets.numel() - positives
    pos_weight = negatives / positives.clamp(min=1.0)
    loss = F.binary_cross_entropy_with_logits(logits, targets, pos_weight=pos_weight)
    return loss * positives / targets.numel()


def dice_loss(logits: torch.Tensor, targets: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    probability = logits.sigmoid().flatten(1)
    targets = targets.flatten(1)
    dice = (2 * (probability * targets).sum(1) + smooth) / (probability.sum(1) + targets.sum(1) + smooth)
    return (1 - dice).mean()


def focal_loss(logits: torch.Tensor, targets: torch.Tensor, gamma: float = 2.0, alpha: float = 0.25) -> torch.Tensor:
    """Sigmoid focal loss (Lin et al.); `alpha < 0` disables the class weighting."""
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    probability = logits.sigmoid()
    p_t = probability * targets + (1 - probability) * (1 - targets)
    loss = bce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = loss * (alpha * targets + (1 - alpha) * (1 - targets))
    return loss.mean()


LOSS_TERMS: dict[str, LossFn] = {
    "bce": bce_loss,
    "iou": soft_iou_loss,
    "bbce": balanced_bce_loss,
    "dice": dice_loss,
    "focal": focal_loss,
}


def build_loss(spec: str) -> LossFn:
    """A loss summing the `+`-separated terms of `spec` with weight 1, e.g. `build_loss("bce+iou")`."""
    names = [name.strip() for name in spec.split("+")]
    unknown = [name for name in names if name not in LOSS_TERMS]
    if not spec.strip() or unknown:
        raise ValueError(f"`loss` must be '+'-joined terms from {sorted(LOSS_TERMS)}, got {spec!r}")
    terms = [LOSS_TERMS[name] for name in names]

    def loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if logits.shape != targets.shape:
            raise ValueError(f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} must match")
        targets = targets.to(logits.dtype)
        return sum(term(logits, targets) for term in terms)

    return loss
