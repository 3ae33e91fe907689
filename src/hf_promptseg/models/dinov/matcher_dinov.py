"""Hungarian matching for DINOv training (spec §6): one-to-one (generic task) and click-constrained many-to-many
(referring task), with `scipy.optimize.linear_sum_assignment`.

Costs, weighted like the reference (class 4, mask BCE 5, dice 5, box L1 5, GIoU 2): the pairwise mask costs are
Mask2Former's (`pair_wise_sigmoid_cross_entropy_loss`, `pair_wise_dice_loss`) on `num_points` random points shared by
all predictions and targets of an image (`sample_point`); boxes use DETR's `generalized_box_iou` on
`center_to_corners_format` boxes. The focal class cost is written here: transformers only has it inline in its
DETR-family matchers. Random points come from an explicit `torch.Generator` so a matching is reproducible.
"""

from __future__ import annotations

import torch
from scipy.optimize import linear_sum_assignment
from transformers.image_transforms import center_to_corners_format
from transformers.loss.loss_for_object_detection import generalized_box_iou
from transformers.models.mask2former.modeling_mask2former import (
    pair_wise_dice_loss,
    pair_wise_sigmoid_cross_entropy_loss,
    sample_point,
)

BLOCKED_COST = 1e6


def hungarian_match(cost: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Minimum-cost one-to-one assignment of a (rows, columns) cost matrix → (row indices, column indices)."""
    if cost.ndim != 2:
        raise ValueError(f"`cost` must be a (rows, columns) matrix, got shape {tuple(cost.shape)}")
    values = cost.detach().float().cpu()
    if not torch.isfinite(values).all():
        raise ValueError("`cost` has NaN or infinite entries (check the predicted boxes and masks)")
    rows, columns = linear_sum_assignment(values.numpy())
    return torch.as_tensor(rows, dtype=torch.long), torch.as_tensor(columns, dtype=torch.long)


def match_many_to_many(cost: torch.Tensor, allowed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Hungarian matching where only `allowed` (rows, columns) pairs may match (others cost `BLOCKED_COST`, and any
    such pair the solver still has to use is dropped)."""
    if allowed.shape != cost.shape or allowed.dtype != torch.bool:
        raise ValueError(f"`allowed` must be a bool matrix of the cost's shape {tuple(cost.shape)}")
    rows, columns = hungarian_match(torch.where(allowed, cost.detach().float(), torch.full_like(cost, BLOCKED_COST)))
    keep = allowed[rows, columns].cpu()
    return rows[keep], columns[keep]


def random_points(count: int, num_points: int, generator: torch.Generator | None, device) -> torch.Tensor:
    """(count, num_points, 2) uniform point coordinates in [0, 1]², drawn on the generator's device."""
    points = torch.rand(count, num_points, 2, generator=generator, device=generator.device if generator else None)
    return points.to(device)


def point_logits(masks: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """(N, P) bilinear samples of (N, h, w) masks at (N, P, 2) normalised points (Mask2Former's `sample_point`)."""
    return sample_point(masks[:, None].to(points.dtype), points, align_corners=False)[:, 0]


def pairwise_mask_costs(
    pred_masks: torch.Tensor, target_masks: torch.Tensor, num_points: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(Q, T) sigmoid-BCE and dice costs between (Q, h, w) mask logits and (T, H, W) targets on shared points."""
    points = random_points(1, num_points, generator, pred_masks.device)
    pred = point_logits(pred_masks, points.expand(pred_masks.shape[0], -1, -1))
    target = point_logits(target_masks, points.expand(target_masks.shape[0], -1, -1))
    return pair_wise_sigmoid_cross_entropy_loss(pred, target), pair_wise_dice_loss(pred, target)


def focal_class_cost(logits: torch.Tensor, labels: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0):
    """(Q, T) focal-style class cost of (Q, C) logits for targets of class `labels` (T,): the focal loss of
    predicting the target class minus that of rejecting it, as DETR-family focal matchers use."""
    probability = logits.sigmoid()
    positive = alpha * (1 - probability) ** gamma * -(probability + 1e-8).log()
    negative = (1 - alpha) * probability**gamma * -(1 - probability + 1e-8).log()
    return (positive - negative)[:, labels]


def box_costs(pred_boxes: torch.Tensor, target_boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(Q, T) L1 and −GIoU costs between cxcywh boxes."""
    l1 = torch.cdist(pred_boxes.float(), target_boxes.float(), p=1)
    giou = generalized_box_iou(center_to_corners_format(pred_boxes.float()), center_to_corners_format(target_boxes))
    return l1, -giou


class DinovHungarianMatcher:
    """One-to-one matcher between predictions and targets of each image (generic task; class cost optional).

    Example:
        >>> import torch
        >>> matcher = DinovHungarianMatcher(num_points=16)
        >>> masks, boxes = torch.randn(3, 8, 8), torch.tensor([[0.5, 0.5, 0.2, 0.2]]).repeat(3, 1)
        >>> rows, columns = matcher.match_image(masks, boxes, (torch.rand(2, 32, 32) > 0.5).float(), boxes[:2])
        >>> len(rows)
        2
    """

    def __init__(
        self,
        cost_class: float = 4.0,
        cost_mask: float = 5.0,
        cost_dice: float = 5.0,
        cost_box: float = 5.0,
        cost_giou: float = 2.0,
        num_points: int = 12544,
        focal_alpha: float = 0.25,
        focal_gamma: float = 2.0,
    ) -> None:
        if num_points < 1:
            raise ValueError(f"`num_points` must be positive, got {num_points}")
        self.cost_class, self.cost_mask, self.cost_dice = cost_class, cost_mask, cost_dice
        self.cost_box, self.cost_giou = cost_box, cost_giou
        self.num_points, self.focal_alpha, self.focal_gamma = num_points, focal_alpha, focal_gamma

    @torch.no_grad()
    def cost_matrix(
        self,
        pred_masks: torch.Tensor,
        pred_boxes: torch.Tensor,
        target_masks: torch.Tensor,
        target_boxes: torch.Tensor,
        logits: torch.Tensor | None = None,
        target_labels: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """(Q, T) weighted cost; the class term needs `logits` (Q, C) and `target_labels` (T,)."""
        bce, dice = pairwise_mask_costs(pred_masks, target_masks, self.num_points, generator)
        l1, giou = box_costs(pred_boxes, target_boxes)
        cost = self.cost_mask * bce + self.cost_dice * dice + self.cost_box * l1 + self.cost_giou * giou
        if logits is not None:
            classes = focal_class_cost(logits.float(), target_labels, self.focal_alpha, self.focal_gamma)
            cost = cost + self.cost_class * classes
        return cost

    def match_image(self, pred_masks, pred_boxes, target_masks, target_boxes, logits=None, target_labels=None,
                    generator=None) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        """(prediction indices, target indices) of one image; empty when it has no target."""
        if target_masks.shape[0] == 0:
            empty = torch.zeros(0, dtype=torch.long)
            return empty, empty
        cost = self.cost_matrix(pred_masks, pred_boxes, target_masks, target_boxes, logits, target_labels, generator)
        return hungarian_match(cost)

    def __call__(self, pred_masks, pred_boxes, targets, logits=None, generator=None) -> list[tuple]:
        """Per image of (B, Q, h, w) masks, (B, Q, 4) boxes, optional (B, Q, C) logits and a list of
        `DinovTargets`: the (prediction indices, target indices) pairs."""
        if len(targets) != pred_masks.shape[0]:
            raise ValueError(f"got {len(targets)} targets for a batch of {pred_masks.shape[0]} predictions")
        return [
            self.match_image(
                pred_masks[b],
                pred_boxes[b],
                t.masks,
                t.boxes,
                None if logits is None else logits[b],
                t.labels,
                generator,
            )  # fmt: skip
            for b, t in enumerate(targets)
        ]


class DinovManyToManyMatcher(DinovHungarianMatcher):
    """Referring matcher: the K tokens of a click may only match that click's targets (no class cost).

    Targets are (click, instance) pairs, so one instance reached by several clicks is a target of each.
    """

    def __init__(self, cost_mask=5.0, cost_dice=5.0, cost_box=5.0, cost_giou=2.0, num_points=12544) -> None:
        super().__init__(0.0, cost_mask, cost_dice, cost_box, cost_giou, num_points)

    def match_image(self, pred_masks, pred_boxes, click_targets, target_masks, target_boxes, generator=None):
        """(prediction indices, instance indices) for (P·K, h, w) masks, (P·K, 4) boxes and (P, M) click targets
        (instance indices, -1 = none)."""
        clicks = click_targets.shape[0]
        if pred_masks.shape[0] % clicks:
            raise ValueError(f"{pred_masks.shape[0]} predictions are not a whole number of tokens per {clicks} clicks")
        tokens = pred_masks.shape[0] // clicks
        click, slot = torch.nonzero(click_targets >= 0, as_tuple=True)
        if click.numel() == 0:
            empty = torch.zeros(0, dtype=torch.long)
            return empty, empty
        instances = click_targets[click, slot]
        used, column_of = torch.unique(instances, return_inverse=True)
        cost = self.cost_matrix(pred_masks, pred_boxes, target_masks[used], target_boxes[used], generator=generator)
        owner = torch.arange(pred_masks.shape[0], device=click.device) // tokens
        allowed = owner[:, None] == click[None, :]
        rows, columns = match_many_to_many(cost[:, column_of.to(cost.device)], allowed.to(cost.device))
        return rows, instances[columns.to(instances.device)].cpu()

    def __call__(self, pred_masks, pred_boxes, click_targets, targets, generator=None) -> list[tuple]:
        """Per image of (B, P·K, h, w) masks, (B, P·K, 4) boxes, (B, P, M) click targets and `DinovTargets`."""
        return [
            self.match_image(pred_masks[b], pred_boxes[b], click_targets[b], t.masks, t.boxes, generator)
            for b, t in enumerate(targets)
        ]


__all__ = [
    "BLOCKED_COST",
    "DinovHungarianMatcher",
    "DinovManyToManyMatcher",
    "box_costs",
    "focal_class_cost",
    "hungarian_match",
    "match_many_to_many",
    "pairwise_mask_costs",
    "point_logits",
    "random_points",
]
