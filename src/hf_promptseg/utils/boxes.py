"""Box operations shared by the families: pairwise IoU and greedy non-maximum suppression.

Boxes are `(x1, y1, x2, y2)`. The IoU is transformers' DETR-family `box_iou`; NMS is written here because its usual
home, `torchvision.ops.nms`, cannot be a dependency (PyPI's torchvision does not import beside the CPU torch).
"""

from __future__ import annotations

import torch
from transformers.loss.loss_for_object_detection import box_iou as _box_iou_and_union


def box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """Pairwise IoU `(N, M)` of `(N, 4)` and `(M, 4)` boxes (transformers' `box_iou` without its union term)."""
    return _box_iou_and_union(boxes1, boxes2)[0]


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression; returns kept indices sorted by decreasing score.

    Same contract as `torchvision.ops.nms`. Ties in score keep the lower index first (stable sort).
    """
    if boxes.ndim != 2 or boxes.shape[-1] != 4:
        raise ValueError(f"`boxes` must have shape (N, 4), got {tuple(boxes.shape)}")
    if scores.shape != boxes.shape[:1]:
        raise ValueError(f"`scores` must have shape ({boxes.shape[0]},), got {tuple(scores.shape)}")
    order = torch.sort(scores, descending=True, stable=True).indices
    if order.numel() == 0:
        return order
    sorted_boxes = boxes[order].to(torch.float32)
    overlaps = box_iou(sorted_boxes, sorted_boxes) > iou_threshold
    suppressed = torch.zeros(order.numel(), dtype=torch.bool)
    keep = []
    for i in range(order.numel()):
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= overlaps[i]
    return order[torch.tensor(keep, dtype=torch.long)]


__all__ = ["box_iou", "nms"]
