import numpy as np
import pytest
import torch
from transformers.models.sam.image_processing_pil_sam import _mask_to_rle, _rle_to_mask

from hf_promptseg.utils.run_length import decode_run_lengths, encode_run_lengths, run_lengths_as_lists


def test_same_encoding_as_transformers():
    generator = torch.Generator().manual_seed(0)
    masks = torch.rand(6, 7, 9, generator=generator) > 0.5
    masks[0] = False
    masks[1] = True
    masks[2, 0, 0] = True
    ours = run_lengths_as_lists(encode_run_lengths(masks))
    assert ours == _mask_to_rle(masks)
    for rle, mask in zip(ours, masks):
        assert np.array_equal(decode_run_lengths(rle), mask.numpy())
        assert np.array_equal(decode_run_lengths(rle), _rle_to_mask(rle))


def test_shapes_are_checked_and_empty_batches_allowed():
    assert encode_run_lengths(torch.zeros(0, 4, 4, dtype=torch.bool)) == []
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        encode_run_lengths(torch.zeros(4, 4, dtype=torch.bool))
