import pytest
import torch
import torch.nn.functional as F

from hf_promptseg.training.losses import build_loss


@pytest.fixture
def logits_and_targets():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 1, 8, 8, generator=generator)
    targets = (torch.rand(3, 1, 8, 8, generator=generator) > 0.7).float()
    return logits, targets


def test_bce_iou_is_the_reference_sum(logits_and_targets):
    logits, targets = logits_and_targets
    p = logits.sigmoid()
    inter = (p * targets).sum((1, 2, 3))
    union = (p + targets).sum((1, 2, 3)) - inter
    expected = F.binary_cross_entropy_with_logits(logits, targets) + (1 - inter / union).mean()
    assert build_loss("bce+iou")(logits, targets) == pytest.approx(expected.item(), rel=1e-6)


def test_balanced_bce_weights_positives_by_their_rarity(logits_and_targets):
    logits, targets = logits_and_targets
    positives = targets.sum()
    negatives = targets.numel() - positives
    per_pixel = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    weighted = torch.where(targets > 0, per_pixel * negatives / positives, per_pixel).mean()
    expected = weighted * positives / targets.numel()
    assert build_loss("bbce")(logits, targets) == pytest.approx(expected.item(), rel=1e-5)


def test_focal_without_focusing_or_weighting_is_bce(logits_and_targets):
    from hf_promptseg.training.losses import focal_loss

    logits, targets = logits_and_targets
    assert focal_loss(logits, targets, gamma=0.0, alpha=-1) == pytest.approx(
        F.binary_cross_entropy_with_logits(logits, targets).item(), rel=1e-6
    )


def test_dice_is_zero_for_a_confident_perfect_prediction(logits_and_targets):
    _, targets = logits_and_targets
    assert build_loss("dice")((targets * 2 - 1) * 50, targets).item() == pytest.approx(0.0, abs=1e-4)


def test_soft_targets_are_accepted_and_gradients_flow(logits_and_targets):
    logits, targets = logits_and_targets
    logits.requires_grad_(True)
    build_loss("bce+iou+dice+focal")(logits, targets * 0.8).backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_bad_specs_and_shapes_raise():
    with pytest.raises(ValueError, match="'\\+'-joined terms"):
        build_loss("bce+lovasz")
    with pytest.raises(ValueError, match="must match"):
        build_loss("bce")(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 8, 8))
