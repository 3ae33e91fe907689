"""Every `encoder_backend` runs the same ViT weights; the exact ones agree with transformers' eager attention."""

import copy

import pytest
import torch

from hf_promptseg.models.sam.encoder_backends import ENCODER_BACKENDS, image_encoder
from tests.testing_utils import random_sam


def test_backends_agree_with_eager_attention():
    model = random_sam(std=0.2)
    pixel_values = torch.randn(1, 3, 256, 256)
    with torch.no_grad():
        eager = image_encoder(copy.deepcopy(model), "eager")(pixel_values)[0]
        assert eager.abs().mean() > 0.1
        for backend in ("default", "sdpa"):
            torch.testing.assert_close(image_encoder(copy.deepcopy(model), backend)(pixel_values)[0], eager,
                                       atol=1e-4, rtol=1e-4)  # fmt: skip
        bf16 = image_encoder(copy.deepcopy(model), "bf16")(pixel_values)[0]
    assert bf16.dtype == torch.float32 and (bf16 - eager).abs().max() < 0.1 * eager.abs().max()
    assert "compile" in ENCODER_BACKENDS  # compiled: measured in benchmarks/interactive.py (compiling takes minutes)
    with pytest.raises(ValueError, match="`encoder_backend` must be one of"):
        image_encoder(model, "onnx")
