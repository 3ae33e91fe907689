import pytest
import torch

from hf_promptseg.models.dinov.denoising_dinov import build_denoising_queries
from hf_promptseg.models.dinov.loss_dinov import DinovCriterion, DinovLossConfig, box_losses, point_mask_losses
from hf_promptseg.models.dinov.prompt_sampling_dinov import DinovReferringPrompts, DinovTargets, mask_boxes
from hf_promptseg.models.dinov.training_forward_dinov import DinovLayerPredictions

# Importance sampling puts 75 % of the points on mask boundaries, where bilinear point labels are fractional and
# even a perfect prediction pays; uniform points keep "perfect ≈ 0" checkable.
CONFIG = DinovLossConfig(num_points=2048, importance_sample_ratio=0.0)


def _targets():
    masks = torch.zeros(3, 32, 32)
    masks[0, 2:12, 2:14] = 1
    masks[1, 16:30, 4:12] = 1
    masks[2, 8:20, 18:30] = 1
    return DinovTargets(masks, mask_boxes(masks.bool()), torch.tensor([0, 1, 1]))


def test_mask_losses_by_hand():
    # logits 0 against an empty target: BCE = log 2 at every point, dice = 1 − 1 / (0.5·P + 1), per mask
    empty = torch.zeros(2, 16, 16)
    bce, dice = point_mask_losses(torch.zeros(2, 8, 8), empty, num_masks=2, config=DinovLossConfig(num_points=100))
    assert bce.item() == pytest.approx(torch.log(torch.tensor(2.0)).item(), rel=1e-5)
    assert dice.item() == pytest.approx(1 - 1 / (0.5 * 100 + 1), rel=1e-5)
    bce, _ = point_mask_losses(torch.zeros(2, 8, 8), empty, num_masks=1, config=DinovLossConfig(num_points=100))
    assert bce.item() == pytest.approx(2 * torch.log(torch.tensor(2.0)).item(), rel=1e-5), "sum / num_masks"
    target = _targets().masks
    perfect = torch.nn.functional.interpolate(target[None], size=(32, 32))[0] * 40 - 20
    bce, dice = point_mask_losses(perfect, target, 3, CONFIG)
    assert bce.item() < 0.1 and dice.item() < 0.06, "only points within a pixel of an edge pay"


def test_box_losses_by_hand():
    l1, giou = box_losses(torch.tensor([[0.5, 0.5, 0.2, 0.2]]), torch.tensor([[0.5, 0.5, 0.4, 0.4]]), 1)
    assert l1.item() == pytest.approx(0.4) and giou.item() == pytest.approx(0.75)
    l1, giou = box_losses(torch.tensor([[0.3, 0.3, 0.2, 0.2]]), torch.tensor([[0.3, 0.3, 0.2, 0.2]]), 1)
    assert l1.item() == 0 and giou.item() == pytest.approx(0.0, abs=1e-6)


def _perfect_generic_layer(target, queries=6, order=(4, 0, 2)):
    masks = torch.full((1, queries, 32, 32), -20.0)
    boxes = torch.full((1, queries, 4), 0.5)
    logits = torch.full((1, queries, 2), -20.0)
    for t, q in enumerate(order):
        masks[0, q] = target.masks[t] * 40 - 20
        boxes[0, q] = target.boxes[t]
        logits[0, q, target.labels[t]] = 20.0
    return DinovLayerPredictions(masks, boxes, logits=logits)


def test_generic_loss_is_near_zero_for_perfect_predictions_and_not_otherwise():
    target = _targets()
    criterion = DinovCriterion(CONFIG)
    layers = [_perfect_generic_layer(target), _perfect_generic_layer(target, order=(1, 3, 5))]
    total, parts = criterion.generic(layers, [target], generator=torch.Generator().manual_seed(0))
    assert {"loss_class_0", "loss_mask_1", "loss_giou_1"} <= set(parts), "both layers are supervised"
    assert total.item() < 1.5, parts
    assert parts["loss_class_0"].item() < 1e-6 and parts["loss_box_0"].item() < 1e-6
    wrong = _perfect_generic_layer(target)
    wrong.logits = -wrong.logits
    bad, _ = criterion.generic([wrong], [target])
    assert bad.item() > 20 * total.item()
    single, parts = DinovCriterion(DinovLossConfig(num_points=512, deep_supervision=False)).generic(layers, [target])
    assert not any(k.endswith("_1") for k in parts)


def test_denoising_terms_skip_the_first_decoder_layer():
    target = _targets()
    dn = build_denoising_queries(torch.zeros(8), [target], num_denoising=6, rng=0)
    layers = []
    for _ in range(3):
        layer = _perfect_generic_layer(target)
        layer.dn_masks = target.masks[dn.target_index[0]][None] * 40 - 20
        layer.dn_boxes = target.boxes[dn.target_index[0]][None]
        layers.append(layer)
    total, parts = DinovCriterion(CONFIG).generic(layers, [target], dn)
    assert "loss_dn_mask_0" in parts and "loss_dn_mask_1" in parts and "loss_dn_mask_2" not in parts
    assert parts["loss_dn_dice_0"].item() < 0.06 and parts["loss_dn_box_0"].item() < 1e-6 and total.item() < 4.0


def test_referring_loss_rewards_the_right_token():
    target = _targets()
    tokens = 2
    # click 0 on instance 0, click 1 on instance 2; token 0 of each click is the perfect one
    masks = torch.full((1, 4, 32, 32), -20.0)
    boxes = torch.full((1, 4, 4), 0.5)
    masks[0, 0], boxes[0, 0] = target.masks[0] * 40 - 20, target.boxes[0]
    masks[0, 2], boxes[0, 2] = target.masks[2] * 40 - 20, target.boxes[2]
    prompts = DinovReferringPrompts(
        prompt_masks=target.masks[[0, 2]][None], prompt_kinds=[["mask", "mask"]],
        content_instances=torch.tensor([[0, 2]]), click_points=torch.zeros(1, 2, 2), click_boxes=torch.zeros(1, 2, 4),
        click_targets=torch.tensor([[[0, -1], [2, -1]]]), targets=[target],
    )  # fmt: skip
    right = torch.full((1, 2, 4), -20.0)
    right[0, 0, 0] = right[0, 1, 2] = 20.0
    iou = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]])
    good = DinovLayerPredictions(masks, boxes, match_scores=right, iou_scores=iou.view(1, 2, tokens))
    total, parts = DinovCriterion(CONFIG).referring([good], prompts)
    assert parts["loss_match_0"].item() < 1e-6 and parts["loss_iou_0"].item() < 0.01 and total.item() < 1.0
    swapped = DinovLayerPredictions(masks, boxes, match_scores=right[:, [1, 0]], iou_scores=iou)
    _, parts = DinovCriterion(CONFIG).referring([swapped], prompts)
    assert parts["loss_match_0"].item() == pytest.approx(40.0, rel=1e-3), "CE of a 40-logit margin"
