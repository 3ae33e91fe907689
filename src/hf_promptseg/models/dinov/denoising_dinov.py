"""Denoising (DN) queries for DINOv's generic training (spec §6, DN "seg", DN-DETR style).

Every ground-truth box is repeated in `groups = num_denoising // max_targets` groups (1 when an image has more
targets than `num_denoising`), jittered (centre ±size/2·noise, size ±size·noise, clamped to [0, 1]) and decoded from
the class-agnostic content `label_enc(0)`; each DN query must reconstruct its own target's mask and box. Query
layout `[DN | proposals | categories]`; attention (True = blocked): DN groups do not see each other, proposals and
category queries never see DN queries, DN queries see the proposals but not the category queries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from hf_promptseg.models.dinov.modeling_dinov import inverse_sigmoid
from hf_promptseg.models.dinov.prompt_sampling_dinov import DinovTargets, jitter_boxes


@dataclass
class DinovDenoisingQueries:
    """DN queries of a batch: `queries` (B, D, C), unsigmoided `boxes` (B, D, 4), `target_index` (B, D) the target
    each query reconstructs (-1 = padding slot), D = `num_groups` × `group_size`."""

    queries: torch.Tensor
    boxes: torch.Tensor
    target_index: torch.Tensor
    num_groups: int
    group_size: int

    @property
    def size(self) -> int:
        return self.num_groups * self.group_size


def build_denoising_queries(
    label_embedding: torch.Tensor,
    targets: Sequence[DinovTargets],
    num_denoising: int = 100,
    noise_scale: float = 0.4,
    rng: np.random.Generator | int = 0,
) -> DinovDenoisingQueries | None:
    """DN queries for the batch's targets (None when no image has a target).

    Args:
        label_embedding: (C,) class-agnostic content, the model's `model.label_enc.weight[0]`.
        targets: one `DinovTargets` per image (boxes cxcywh normalised).
        num_denoising: DN query budget (`DN_NUM`, 100); groups = budget // most targets of an image.
        noise_scale: box jitter (`DN_NOISE_SCALE`, 0.4).
        rng: numpy Generator or seed for the jitter.
    """
    if num_denoising < 1:
        raise ValueError(f"`num_denoising` must be positive, got {num_denoising}")
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(int(rng))
    group_size = max((len(t.boxes) for t in targets), default=0)
    if group_size == 0:
        return None
    groups = max(1, num_denoising // group_size)
    size = groups * group_size
    batch = len(targets)
    clean = torch.zeros(batch, size, 4)
    target_index = torch.full((batch, size), -1, dtype=torch.long)
    for b, target in enumerate(targets):
        count = len(target.boxes)
        for group in range(groups):
            start = group * group_size
            clean[b, start : start + count] = target.boxes.detach().float().cpu()
            target_index[b, start : start + count] = torch.arange(count)
    valid = target_index >= 0
    noisy = jitter_boxes(clean, noise_scale, rng)
    device = label_embedding.device
    boxes = torch.where(valid[..., None], inverse_sigmoid(noisy), torch.zeros(()))
    queries = label_embedding[None, None].expand(batch, size, -1) * valid[..., None].to(device, label_embedding.dtype)
    return DinovDenoisingQueries(queries, boxes.to(device), target_index.to(device), groups, group_size)


def denoising_attention_mask(
    denoising: DinovDenoisingQueries, matching_mask: torch.Tensor, num_proposals: int
) -> torch.Tensor:
    """(D + Q + K) square bool mask (True = blocked) putting the DN block before a (Q + K) generic mask."""
    size, total = denoising.size, denoising.size + matching_mask.shape[0]
    blocked = torch.zeros(total, total, dtype=torch.bool, device=matching_mask.device)
    blocked[size:, size:] = matching_mask
    blocked[size:, :size] = True
    group = torch.arange(size, device=matching_mask.device) // denoising.group_size
    blocked[:size, :size] = group[:, None] != group[None, :]
    blocked[:size, size + num_proposals :] = True
    return blocked


__all__ = ["DinovDenoisingQueries", "build_denoising_queries", "denoising_attention_mask"]
