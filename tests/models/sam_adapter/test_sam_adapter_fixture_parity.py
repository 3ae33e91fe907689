"""Golden parity with the reference SAM-Adapter (../shared/fixtures/sam_adapter), both token layouts."""

import hashlib
import json

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from hf_promptseg.models.sam_adapter import build_sam_adapter_model
from hf_promptseg.models.sam_adapter.predict import reference_pixel_values
from hf_promptseg.tuners.sam_adapter import highpass_magnitude
from tests.conftest import fixture_dir

ENCODER_ATOL = 1e-4
DECODER_ATOL = 1e-5


@pytest.fixture(scope="module")
def fixture():
    path = fixture_dir("sam_adapter")
    return {
        "state_dict": load_file(path / "reference_state_dict.safetensors"),
        "inputs": load_file(path / "inputs.safetensors"),
        "outputs": load_file(path / "outputs.safetensors"),
    }


@pytest.fixture(scope="module")
def pixel_values(fixture):
    return reference_pixel_values([fixture["inputs"]["image.original"].numpy()], size=1024)


def _close(actual, expected, atol):
    assert actual.shape == expected.shape
    delta = (actual - expected).abs().max().item()
    assert delta <= atol + 1e-4 * expected.abs().max().item(), f"max |Δ| {delta}"


def test_reference_preprocessing_is_bit_exact(pixel_values):
    reference = json.loads((fixture_dir("sam_adapter") / "reference_config.json").read_text())["pixel_values"]
    assert list(pixel_values.shape) == reference["shape"]
    assert hashlib.sha256(pixel_values.numpy().tobytes()).hexdigest() == reference["sha256"]


@pytest.mark.parametrize("layout", ["reference", "bhwc"])
def test_adapter_internals_and_outputs_match(fixture, pixel_values, layout):
    outputs = fixture["outputs"]
    model = build_sam_adapter_model(fixture["state_dict"], embedding_layout=layout)
    sam = model.base_model.model
    layer = sam.vision_encoder.sam_adapter
    with torch.no_grad():
        tokens = sam.vision_encoder.patch_embed(pixel_values)
        _close(tokens[:, :16, :16], outputs["patch_embed_crop"], ENCODER_ATOL)
        handcrafted, embedding = layer.adapter_inputs("default", pixel_values, tokens)
        _close(embedding, outputs[f"{layout}.embedding_feature"], ENCODER_ATOL)
        _close(
            handcrafted.transpose(1, 2).reshape(1, -1, 64, 64), outputs[f"{layout}.handcrafted_feature"], ENCODER_ATOL
        )
        features = handcrafted + embedding
        _close(features, outputs[f"{layout}.adapter_feature"], ENCODER_ATOL)
        for index in range(4):
            tune = getattr(layer, f"sam_adapter_lightweight_mlp_{index}")
            _close(F.gelu(tune["default"](features)), outputs[f"{layout}.adapter_hidden.{index}"], ENCODER_ATOL)
            if f"{layout}.adapter_prompt.{index}" in outputs:
                _close(
                    layer.layer_prompt("default", index, features),
                    outputs[f"{layout}.adapter_prompt.{index}"],
                    ENCODER_ATOL,
                )
        _close(sam.get_image_wide_positional_embeddings(), outputs["image_pe"], ENCODER_ATOL)
        _close(sam.get_image_embeddings(pixel_values), outputs[f"{layout}.image_embeddings"], ENCODER_ATOL)
        result = model(pixel_values=pixel_values, multimask_output=False)
    _close(result.pred_masks[:, 0], outputs[f"{layout}.low_res_masks"], DECODER_ATOL)
    _close(result.iou_scores[:, 0], outputs[f"{layout}.iou_predictions"], DECODER_ATOL)
    if layout == "reference":
        masks = F.interpolate(result.pred_masks[:, 0], (1024, 1024), mode="bilinear", align_corners=False)
        _close(masks[..., ::3, ::3], outputs["reference.masks_stride3"], DECODER_ATOL)


def test_highpass_matches_the_reference_crop(fixture, pixel_values):
    _close(highpass_magnitude(pixel_values, 0.25)[..., :64, :64], fixture["outputs"]["fft_highpass_crop"], 1e-5)


def test_highpass_runs_in_float32_under_bf16_autocast(pixel_values):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        result = highpass_magnitude(pixel_values[..., :128, :128].bfloat16(), 0.25)
    assert result.dtype == torch.float32
