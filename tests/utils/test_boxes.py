import pytest
import torch

from hf_promptseg.utils.boxes import box_iou, nms


def test_box_iou_of_known_boxes():
    boxes = torch.tensor([[0.0, 0.0, 2.0, 2.0], [1.0, 1.0, 3.0, 3.0], [5.0, 5.0, 6.0, 6.0]])
    iou = box_iou(boxes, boxes)
    assert torch.allclose(iou.diagonal(), torch.ones(3))
    assert iou[0, 1].item() == pytest.approx(1 / 7) and iou[0, 2].item() == 0.0


def test_nms_matches_greedy_definition():
    generator = torch.Generator().manual_seed(0)
    corners = torch.rand(200, 2, generator=generator) * 100
    sizes = torch.rand(200, 2, generator=generator) * 30 + 1
    boxes = torch.cat([corners, corners + sizes], dim=1)
    scores = torch.rand(200, generator=generator)
    keep = nms(boxes, scores, 0.5)
    assert torch.all(scores[keep][:-1] >= scores[keep][1:])
    kept_overlaps = box_iou(boxes[keep], boxes[keep]).fill_diagonal_(0)
    assert kept_overlaps.max() <= 0.5
    dropped = sorted(set(range(200)) - set(keep.tolist()))
    for index in dropped:  # every dropped box overlaps a kept box with a higher score
        overlap = box_iou(boxes[index : index + 1], boxes[keep])[0]
        assert torch.any((overlap > 0.5) & (scores[keep] >= scores[index]))
    with pytest.raises(ValueError, match=r"`boxes` must have shape \(N, 4\)"):
        nms(boxes[:, :3], scores, 0.5)
