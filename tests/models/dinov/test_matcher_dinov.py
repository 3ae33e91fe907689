import itertools

import numpy as np
import pytest
import torch

from hf_promptseg.models.dinov.denoising_dinov import build_denoising_queries, denoising_attention_mask
from hf_promptseg.models.dinov.matcher_dinov import (
    BLOCKED_COST,
    DinovHungarianMatcher,
    DinovManyToManyMatcher,
    focal_class_cost,
    hungarian_match,
    match_many_to_many,
)
from hf_promptseg.models.dinov.prompt_sampling_dinov import DinovTargets


def _brute_force(cost):
    rows, columns = cost.shape
    if rows >= columns:
        return min(sum(cost[r, c] for r, c in zip(perm, range(columns)))
                   for perm in itertools.permutations(range(rows), columns))  # fmt: skip
    return _brute_force(cost.T)


@pytest.mark.parametrize("shape", [(3, 3), (5, 2), (2, 4), (6, 4)])
def test_hungarian_equals_brute_force(shape):
    generator = torch.Generator().manual_seed(sum(shape))
    for _ in range(5):
        cost = torch.rand(shape, generator=generator)
        rows, columns = hungarian_match(cost)
        assert len(rows) == min(shape) and len(set(rows.tolist())) == len(rows)
        assert cost[rows, columns].sum().item() == pytest.approx(_brute_force(cost.numpy()), abs=1e-6)
    with pytest.raises(ValueError, match="NaN or infinite"):
        hungarian_match(torch.tensor([[float("nan")]]))


def test_many_to_many_respects_the_allowed_pairs():
    cost = torch.rand(6, 3, generator=torch.Generator().manual_seed(0))
    allowed = torch.zeros(6, 3, dtype=torch.bool)
    allowed[:3, 0] = allowed[3:, 1:] = True
    rows, columns = match_many_to_many(cost, allowed)
    assert allowed[rows, columns].all() and len(rows) == 3
    best = min(cost[r0, 0] + cost[r1, 1] + cost[r2, 2] for r0 in range(3) for r1 in range(3, 6) for r2 in range(3, 6)
               if r1 != r2)  # fmt: skip
    assert cost[rows, columns].sum() == pytest.approx(best.item())
    assert BLOCKED_COST > 1e5


def test_focal_class_cost_by_hand():
    logits = torch.tensor([[0.0, 2.0]])
    p = torch.sigmoid(torch.tensor(2.0))
    expected = 0.25 * (1 - p) ** 2 * -p.log() - 0.75 * p**2 * -(1 - p).log()
    assert focal_class_cost(logits, torch.tensor([1]))[0, 0] == pytest.approx(expected.item(), rel=1e-5)
    assert focal_class_cost(logits, torch.tensor([0]))[0, 0] == pytest.approx(
        0.25 * 0.25 * np.log(2) - 0.75 * 0.25 * np.log(2), rel=1e-4
    )


def _square(y0, x0, size=32):
    mask = torch.zeros(size, size)
    mask[y0 : y0 + 8, x0 : x0 + 8] = 1
    return mask


def test_matcher_finds_the_permuted_perfect_predictions():
    targets = torch.stack([_square(2, 2), _square(20, 4), _square(10, 22)])
    boxes = torch.tensor([[6, 6, 8, 8], [8, 24, 8, 8], [26, 14, 8, 8]]) / 32.0
    order = torch.tensor([3, 0, 4])  # prediction order[t] is a perfect copy of target t
    pred_masks = torch.full((5, 32, 32), -8.0)
    pred_boxes = torch.rand(5, 4) * 0.2 + 0.4
    for t, q in enumerate(order.tolist()):
        pred_masks[q] = targets[t] * 16 - 8
        pred_boxes[q] = boxes[t]
    logits = torch.full((5, 2), -3.0)
    labels = torch.tensor([0, 1, 1])
    for t, q in enumerate(order.tolist()):
        logits[q, labels[t]] = 3.0
    matcher = DinovHungarianMatcher(num_points=256)
    [(rows, columns)] = matcher(pred_masks[None], pred_boxes[None], [DinovTargets(targets, boxes, labels)],
                                logits[None], generator=torch.Generator().manual_seed(0))  # fmt: skip
    assert dict(zip(columns.tolist(), rows.tolist())) == {0: 3, 1: 0, 2: 4}
    empty = DinovTargets(torch.zeros(0, 32, 32), torch.zeros(0, 4), torch.zeros(0, dtype=torch.long))
    assert matcher(pred_masks[None], pred_boxes[None], [empty])[0][0].numel() == 0


def test_many_to_many_matcher_keeps_tokens_on_their_click():
    targets = torch.stack([_square(2, 2), _square(20, 4)])
    boxes = torch.tensor([[6, 6, 8, 8], [8, 24, 8, 8]]) / 32.0
    pred_masks = torch.stack([targets[1] * 16 - 8] * 3 + [targets[0] * 16 - 8] * 3)  # 2 clicks × 3 tokens
    pred_boxes = torch.cat([boxes[1:].expand(3, 4), boxes[:1].expand(3, 4)])
    click_targets = torch.tensor([[0, -1], [1, 0]])  # click 0 → instance 0 only; click 1 → 1 then 0
    matcher = DinovManyToManyMatcher(num_points=256)
    rows, instances = matcher.match_image(pred_masks, pred_boxes, click_targets, targets, boxes,
                                          torch.Generator().manual_seed(0))  # fmt: skip
    pairs = sorted(zip(rows.tolist(), instances.tolist()))
    assert len(pairs) == 3
    assert [i for r, i in pairs if r < 3] == [0], "click 0's tokens may only take its one target"
    assert sorted(i for r, i in pairs if r >= 3) == [0, 1]
    with pytest.raises(ValueError, match="whole number of tokens"):
        matcher.match_image(pred_masks[:5], pred_boxes[:5], click_targets, targets, boxes)


def test_denoising_queries_and_mask():
    targets = [DinovTargets(torch.zeros(3, 8, 8), torch.rand(3, 4) * 0.5 + 0.25, torch.arange(3)),
               DinovTargets(torch.zeros(1, 8, 8), torch.rand(1, 4) * 0.5 + 0.25, torch.arange(1))]  # fmt: skip
    label = torch.randn(16)
    dn = build_denoising_queries(label, targets, num_denoising=7, noise_scale=0.4, rng=0)
    assert (dn.num_groups, dn.group_size, dn.size) == (2, 3, 6)
    assert dn.target_index[1].tolist() == [0, -1, -1, 0, -1, -1]
    assert torch.equal(dn.queries[0, 4], label) and not dn.queries[1, 1].any()
    noisy = dn.boxes[0].sigmoid()
    clean = targets[0].boxes.repeat(2, 1)
    assert ((noisy[:, :2] - clean[:, :2]).abs() <= clean[:, 2:] * 0.2 + 1e-4).all()
    assert not torch.allclose(noisy, clean)
    again = build_denoising_queries(label, targets, num_denoising=7, rng=0)
    assert torch.equal(again.boxes, dn.boxes)
    blocked = denoising_attention_mask(dn, torch.zeros(5, 5, dtype=torch.bool), num_proposals=4)
    assert blocked.shape == (11, 11)
    assert blocked[:3, 3:6].all() and not blocked[:3, :3].any(), "DN groups do not see each other"
    assert blocked[6:, :6].all(), "matching queries never see DN queries"
    assert not blocked[:6, 6:10].any() and blocked[:6, 10:].all(), "DN sees proposals, not category queries"
    assert build_denoising_queries(label, [targets[0].__class__(torch.zeros(0, 8, 8), torch.zeros(0, 4),
                                   torch.zeros(0, dtype=torch.long))]) is None  # fmt: skip
