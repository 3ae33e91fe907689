"""Mask helpers shared by the families: IoU of binary masks and resizing logits back to the input image."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def mask_iou(prediction: np.ndarray, target: np.ndarray) -> float:
    """Intersection over union of two boolean masks (1.0 when both are empty)."""
    union = np.logical_or(prediction, target).sum()
    return float(np.logical_and(prediction, target).sum() / union) if union else 1.0


def unpad_mask_logits(
    logits: torch.Tensor,
    valid_size: tuple[int, int],
    target_size: tuple[int, int] | None = None,
    padded_size: tuple[int, int] | None = None,
    mode: str = "bilinear",
    antialias: bool = False,
) -> torch.Tensor:
    """(N, h, w) mask logits of a padded input → logits over the original image.

    Steps: bilinear upsampling to `padded_size` (the model's padded input, when the logits are coarser), a crop to the
    top-left `valid_size` (the resized image before padding), then a resize to `target_size` with `mode` (skipped when
    it equals `valid_size`).
    """
    if logits.ndim != 3:
        raise ValueError(f"`logits` must have shape (N, h, w), got {tuple(logits.shape)}")
    if padded_size is not None and tuple(logits.shape[-2:]) != tuple(padded_size):
        logits = F.interpolate(logits[None], size=tuple(padded_size), mode="bilinear", align_corners=False)[0]
    logits = logits[:, : valid_size[0], : valid_size[1]]
    if target_size is not None and tuple(target_size) != tuple(logits.shape[-2:]):
        logits = F.interpolate(
            logits[None], size=tuple(target_size), mode=mode, align_corners=False, antialias=antialias
        )[0]
    return logits


__all__ = ["mask_iou", "unpad_mask_logits"]
