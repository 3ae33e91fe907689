"""Every `encoder_backend` runs the same ViT weights; the exact ones agree with transformers' eager attention."""

import copy

import pytest
import torch
from transformers.models.sam import modeling_sam

from hf_promptseg.models.sam.encoder_backends import (
    ENCODER_BACKENDS,
    check_encoder_backend,
    image_embeddings_function,
    image_encoder,
)
from tests.testing_utils import random_sam, random_sam2


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


def test_onnx_backend_matches_eager():
    pytest.importorskip("onnxruntime", reason="the [onnx] extra (onnxruntime) is not installed")
    pytest.importorskip("onnxscript", reason="the [onnx] extra (onnxscript, torch.onnx's exporter) is not installed")
    model = random_sam(std=0.2)
    pixel_values = torch.randn(1, 3, 256, 256)
    with torch.no_grad():
        eager = image_encoder(model, "eager")(pixel_values)[0]
        encode = image_encoder(model, "onnx")
        torch.testing.assert_close(encode(pixel_values)[0], eager, atol=1e-4, rtol=1e-4)
        assert image_encoder(model, "onnx") is encode  # exported once per model and weights
        with pytest.raises(ValueError, match="exported shape"):
            encode(torch.randn(1, 3, 128, 128))


def test_backends_on_one_model_do_not_interfere():
    model = random_sam(std=0.2)
    pixel_values = torch.randn(1, 3, 256, 256)
    loaded = type(model.vision_encoder.layers[0].attn)
    eager, sdpa = image_encoder(model, "eager"), image_encoder(model, "sdpa")
    assert image_encoder(model, "sdpa") is sdpa
    with torch.no_grad():
        eager(pixel_values)
        assert type(model.vision_encoder.layers[0].attn) is modeling_sam.SamVisionAttention
        sdpa(pixel_values)
        assert type(model.vision_encoder.layers[0].attn) is modeling_sam.SamVisionSdpaAttention
        image_encoder(model, "default")(pixel_values)
        assert type(model.vision_encoder.layers[0].attn) is loaded
        embeddings = image_embeddings_function(model, "eager")(pixel_values)
        default = image_embeddings_function(model, "default")
        assert type(model.vision_encoder.layers[0].attn) is loaded
        torch.testing.assert_close(embeddings, default(pixel_values), atol=1e-4, rtol=1e-4)


def test_bad_backend_names_and_models():
    with pytest.raises(ValueError, match=r"`encoder_backend` must be one of \('default', 'eager'.*got 'tensorrt'"):
        check_encoder_backend("tensorrt")
    with pytest.raises(ValueError, match="`encoder_backend` must be one of"):
        image_encoder(random_sam(), None)
    with pytest.raises(ValueError, match="needs a SAM / SAM-HQ ViT image encoder; Sam2Model has none"):
        image_encoder(random_sam2(), "sdpa")
    assert image_embeddings_function(random_sam2(), "default") is not None
