"""DINOv training losses (spec §6), summed over every decoder layer (deep supervision, each layer re-matched).

Same maths as transformers, so reused: the focal classification loss is DETR-family `sigmoid_focal_loss`
(×queries, as Deformable DETR scales it), mask BCE and dice are Mask2Former's `sigmoid_cross_entropy_loss` /
`dice_loss` on points chosen by `Mask2FormerLoss.sample_points_using_uncertainty` (uncertainty = −|logit|,
oversample 3, importance 0.75), boxes are L1 + DETR `generalized_box_iou`. Written here (no transformers
counterpart): the referring match-score cross-entropy, the IoU-head regression and the denoising terms.

- generic: focal over (proposals × prompted categories) against the matched targets' prompt index, masks, boxes;
  with DN, every DN query also reconstructs its own target (no matching; the first layer's DN output is skipped).
- referring: click-constrained many-to-many matching; masks, boxes, IoU head (MSE to the matched mask's
  point-sampled dice), and per content prompt a cross-entropy over all click tokens whose target is the token whose
  mask best fits the prompt's instance. The reference first keeps tokens by NMS on the predicted IoU and
  Hungarian-matches prompts to the kept ones; taking the best-fitting token directly is the same choice whenever
  prompts refer to different instances and needs no NMS threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers.image_transforms import center_to_corners_format
from transformers.loss.loss_for_object_detection import generalized_box_iou, sigmoid_focal_loss
from transformers.models.mask2former.modeling_mask2former import (
    Mask2FormerLoss,
    dice_loss,
    sample_point,
    sigmoid_cross_entropy_loss,
)

from hf_promptseg.models.dinov.matcher_dinov import (
    DinovHungarianMatcher,
    DinovManyToManyMatcher,
    pairwise_mask_costs,
)


@dataclass
class DinovLossConfig:
    """Loss weights, matcher costs and point sampling (reference values as defaults)."""

    class_weight: float = 4.0
    mask_weight: float = 5.0
    dice_weight: float = 5.0
    box_weight: float = 5.0
    giou_weight: float = 2.0
    iou_weight: float = 1.0
    match_weight: float = 2.0
    num_points: int = 12544
    oversample_ratio: float = 3.0
    importance_sample_ratio: float = 0.75
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    deep_supervision: bool = True

    def __post_init__(self) -> None:
        if self.num_points < 1:
            raise ValueError(f"`num_points` must be positive, got {self.num_points}")
        if self.oversample_ratio < 1 or not 0 <= self.importance_sample_ratio <= 1:
            raise ValueError("`oversample_ratio` must be >= 1 and `importance_sample_ratio` in [0, 1]")


def _uncertainty(logits: torch.Tensor) -> torch.Tensor:
    return -logits.abs()


def _num_masks(count: int, device) -> float:
    """Targets per process, averaged over processes like DETR does (at least 1)."""
    value = torch.tensor(float(count), device=device)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.all_reduce(value)
        value = value / torch.distributed.get_world_size()
    return max(value.item(), 1.0)


def point_mask_losses(pred_masks, target_masks, num_masks, config: DinovLossConfig):
    """(BCE, dice) of (M, h, w) logits vs (M, H, W) targets on uncertainty-sampled points, each / num_masks."""
    if pred_masks.shape[0] == 0:
        zero = pred_masks.sum() * 0.0
        return zero, zero
    logits = pred_masks[:, None].float()
    with torch.no_grad():
        # `sample_points_using_uncertainty` reads nothing from the loss object, so it is called unbound.
        points = Mask2FormerLoss.sample_points_using_uncertainty(
            None, logits, _uncertainty, config.num_points, config.oversample_ratio, config.importance_sample_ratio
        )
        labels = sample_point(target_masks[:, None].float(), points, align_corners=False)[:, 0]
    point_logits = sample_point(logits, points, align_corners=False)[:, 0]
    return sigmoid_cross_entropy_loss(point_logits, labels, num_masks), dice_loss(point_logits, labels, num_masks)


def box_losses(pred_boxes, target_boxes, num_masks):
    """(L1, 1 − GIoU) of matched cxcywh boxes, each / num_masks."""
    if pred_boxes.shape[0] == 0:
        zero = pred_boxes.sum() * 0.0
        return zero, zero
    l1 = F.l1_loss(pred_boxes.float(), target_boxes.float(), reduction="sum") / num_masks
    giou = generalized_box_iou(center_to_corners_format(pred_boxes.float()), center_to_corners_format(target_boxes))
    return l1, (1 - torch.diag(giou)).sum() / num_masks


class DinovCriterion:
    """Weighted DINOv losses over the per-layer predictions of `training_forward_dinov`.

    Example:
        >>> import torch
        >>> from hf_promptseg.models.dinov.loss_dinov import DinovCriterion, DinovLossConfig
        >>> from hf_promptseg.models.dinov.training_forward_dinov import DinovLayerPredictions
        >>> from hf_promptseg.models.dinov.prompt_sampling_dinov import DinovTargets
        >>> mask = torch.zeros(1, 16, 16); mask[0, 4:12, 4:12] = 1
        >>> target = DinovTargets(mask, torch.tensor([[0.5, 0.5, 0.5, 0.5]]), torch.tensor([0]))
        >>> layer = DinovLayerPredictions(torch.randn(1, 3, 4, 4), torch.rand(1, 3, 4), logits=torch.randn(1, 3, 1))
        >>> total, parts = DinovCriterion(DinovLossConfig(num_points=64)).generic([layer], [target])
        >>> sorted(parts)[:3]
        ['loss_box_0', 'loss_class_0', 'loss_dice_0']
    """

    def __init__(self, config: DinovLossConfig | None = None) -> None:
        self.config = config or DinovLossConfig()
        c = self.config
        self.matcher = DinovHungarianMatcher(c.class_weight, c.mask_weight, c.dice_weight, c.box_weight,
                                             c.giou_weight, c.num_points, c.focal_alpha, c.focal_gamma)  # fmt: skip
        self.many_matcher = DinovManyToManyMatcher(c.mask_weight, c.dice_weight, c.box_weight, c.giou_weight,
                                                   c.num_points)  # fmt: skip

    def _layers(self, layers):
        # key suffix 0 = last layer, 1.. = earlier layers (the reference's naming)
        ordered = list(reversed(layers))
        return ordered if self.config.deep_supervision else ordered[:1]

    def _total(self, parts: dict[str, torch.Tensor]) -> torch.Tensor:
        weight = {"class": self.config.class_weight, "mask": self.config.mask_weight, "dice": self.config.dice_weight,
                  "box": self.config.box_weight, "giou": self.config.giou_weight, "iou": self.config.iou_weight,
                  "match": self.config.match_weight}  # fmt: skip
        return sum(weight[name.split("_")[-2]] * value for name, value in parts.items())

    def _mask_box_terms(self, parts, suffix, masks, boxes, target_masks, target_boxes, num_masks):
        bce, dice = point_mask_losses(masks, target_masks, num_masks, self.config)
        l1, giou = box_losses(boxes, target_boxes, num_masks)
        parts.update({f"{suffix}mask_0": bce, f"{suffix}dice_0": dice, f"{suffix}box_0": l1,
                      f"{suffix}giou_0": giou})  # fmt: skip

    def generic(self, layers, targets, denoising=None, generator: torch.Generator | None = None):
        """(total, parts) for generic layers and per-image `DinovTargets` (labels = prompt index)."""
        device = layers[-1].pred_masks.device
        num_masks = _num_masks(sum(len(t.labels) for t in targets), device)
        parts: dict[str, torch.Tensor] = {}
        ordered = self._layers(layers)
        for index, layer in enumerate(ordered):
            matches = self.matcher(layer.pred_masks, layer.pred_boxes, targets, layer.logits, generator)
            batch, queries = [], []
            onehot = torch.zeros_like(layer.logits, dtype=torch.float32)
            for b, (rows, matched) in enumerate(matches):
                onehot[b, rows.to(device), targets[b].labels[matched].to(device)] = 1.0
                batch.append(torch.full_like(rows, b))
                queries.append(rows)
            b_index, q_index = torch.cat(batch).to(device), torch.cat(queries).to(device)
            columns = [matched for _, matched in matches]
            target_masks = torch.cat([t.masks[c] for t, c in zip(targets, columns)]).to(device)
            target_boxes = torch.cat([t.boxes[c] for t, c in zip(targets, columns)]).to(device)
            layer_parts: dict[str, torch.Tensor] = {}
            classes = sigmoid_focal_loss(layer.logits.float(), onehot, num_masks, self.config.focal_alpha,
                                         self.config.focal_gamma) * layer.logits.shape[1]  # fmt: skip
            layer_parts["class_0"] = classes
            self._mask_box_terms(layer_parts, "", layer.pred_masks[b_index, q_index], layer.pred_boxes[b_index, q_index],
                                 target_masks, target_boxes, num_masks)  # fmt: skip
            first_decoder_layer = index == len(ordered) - 1 and len(ordered) > 1
            if denoising is not None and layer.dn_masks is not None and not first_decoder_layer:
                valid = denoising.target_index >= 0
                dn_b, dn_q = torch.nonzero(valid, as_tuple=True)
                which = denoising.target_index[dn_b, dn_q]
                dn_masks = torch.stack([targets[b].masks[t] for b, t in zip(dn_b.tolist(), which.tolist())])
                dn_boxes = torch.stack([targets[b].boxes[t] for b, t in zip(dn_b.tolist(), which.tolist())])
                dn_num = _num_masks(len(which), device) if len(which) else 1.0
                self._mask_box_terms(layer_parts, "dn_", layer.dn_masks[dn_b, dn_q], layer.dn_boxes[dn_b, dn_q],
                                     dn_masks.to(device), dn_boxes.to(device), dn_num)  # fmt: skip
            parts.update({f"loss_{name[:-2]}_{index}": value for name, value in layer_parts.items()})
        return self._total(parts), parts

    def referring(self, layers, prompts, generator: torch.Generator | None = None):
        """(total, parts) for referring layers and a `DinovReferringPrompts` batch (self-referring)."""
        device = layers[-1].pred_masks.device
        targets = prompts.targets
        ordered = self._layers(layers)
        # The last layer's matching is reused for every layer (the reference's many-to-many criterion does so).
        last = ordered[0]
        matches = self.many_matcher(last.pred_masks, last.pred_boxes, prompts.click_targets, targets, generator)
        num_masks = _num_masks(sum(len(rows) for rows, _ in matches), device)
        parts: dict[str, torch.Tensor] = {}
        for index, layer in enumerate(ordered):
            b_index = torch.cat([torch.full_like(rows, b) for b, (rows, _) in enumerate(matches)]).to(device)
            q_index = torch.cat([rows for rows, _ in matches]).to(device)
            target_masks = torch.cat([t.masks[c] for t, (_, c) in zip(targets, matches)]).to(device)
            target_boxes = torch.cat([t.boxes[c] for t, (_, c) in zip(targets, matches)]).to(device)
            layer_parts: dict[str, torch.Tensor] = {}
            masks = layer.pred_masks[b_index, q_index]
            self._mask_box_terms(layer_parts, "", masks, layer.pred_boxes[b_index, q_index], target_masks,
                                 target_boxes, num_masks)  # fmt: skip
            with torch.no_grad():
                if len(masks):
                    points = torch.rand(len(masks), self.config.num_points, 2, generator=generator).to(device)
                    probs = sample_point(masks[:, None].float(), points, align_corners=False)[:, 0].sigmoid()
                    labels = sample_point(target_masks[:, None].float(), points, align_corners=False)[:, 0]
                    dice = (2 * (probs * labels).sum(-1) + 1) / (probs.sum(-1) + labels.sum(-1) + 1)
                else:
                    dice = masks.new_zeros(0)
            predicted_iou = layer.iou_scores.flatten(1)[b_index, q_index].float()
            layer_parts["iou_0"] = F.mse_loss(predicted_iou, dice, reduction="sum") / num_masks
            match_terms = []
            for b, target in enumerate(targets):
                with torch.no_grad():
                    instances = target.masks[prompts.content_instances[b]].to(device)
                    bce, dice_cost = pairwise_mask_costs(layer.pred_masks[b], instances, self.config.num_points,
                                                         generator)  # fmt: skip
                    best = (bce + dice_cost).argmin(0)
                match_terms.append(F.cross_entropy(layer.match_scores[b].float(), best, reduction="sum"))
            layer_parts["match_0"] = torch.stack(match_terms).sum() / max(prompts.content_instances.numel(), 1)
            parts.update({f"loss_{name[:-2]}_{index}": value for name, value in layer_parts.items()})
        return self._total(parts), parts


__all__ = ["DinovCriterion", "DinovLossConfig", "box_losses", "point_mask_losses"]
