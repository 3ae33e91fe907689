import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hf_promptseg.utils.masks import mask_iou, unpad_mask_logits


def test_mask_iou():
    mask = np.zeros((4, 4), bool)
    mask[:2] = True
    half = np.zeros_like(mask)
    half[:1] = True
    assert mask_iou(mask, mask) == 1.0 and mask_iou(mask, half) == 0.5 and mask_iou(mask, ~mask) == 0.0
    assert mask_iou(np.zeros_like(mask), np.zeros_like(mask)) == 1.0


def test_unpad_upsamples_crops_and_resizes_in_that_order():
    logits = torch.randn(2, 8, 10)
    out = unpad_mask_logits(logits, valid_size=(28, 36), target_size=(14, 18), padded_size=(32, 40))
    upsampled = F.interpolate(logits[None], size=(32, 40), mode="bilinear", align_corners=False)[0]
    expected = F.interpolate(upsampled[None, :, :28, :36], size=(14, 18), mode="bilinear", align_corners=False)[0]
    assert torch.equal(out, expected)
    assert torch.equal(unpad_mask_logits(logits, valid_size=(5, 6)), logits[:, :5, :6])


def test_unpad_rejects_other_ranks():
    with pytest.raises(ValueError, match=r"\(N, h, w\)"):
        unpad_mask_logits(torch.zeros(8, 8), valid_size=(4, 4))
