"""The converted reference DINOv reproduces the golden fixture (../shared/fixtures/dinov) within its README tolerances."""

import pytest
import torch
from safetensors.torch import load_file

from hf_promptseg.models.dinov import DinovImageProcessor, convert_dinov_checkpoint
from tests.conftest import fixture_dir

FEATURES, LOGITS, BOXES = 1e-4, 2e-5, 1e-6  # the fixture README's suggested float32 checks


@pytest.fixture(scope="module")
def golden():
    folder = fixture_dir("dinov")
    model = convert_dinov_checkpoint(
        folder / "reference_state_dict.safetensors", reference_config=folder / "reference_config.json"
    )
    inputs, outputs = load_file(folder / "inputs.safetensors"), load_file(folder / "outputs.safetensors")
    with torch.no_grad():
        target = model.model.get_image_features(inputs["target.pixel_values"])
        reference = model.model.get_image_features(inputs["reference.pixel_values"])
        masks = torch.zeros(1, 3, 192, 256)
        masks[0, :, :170, :241] = inputs["reference.prompt_masks"].float()
        prompts = model.model.encode_visual_prompts(reference.multi_scale_features, masks)
        categories = torch.stack([prompts.content_queries[0, :2].mean(0), prompts.content_queries[0, 2]])[None]
        generic = model.generic(target, categories, prompts.content_boxes[:, :2])
        referring = model.referring(target, prompts.content_queries, prompts.content_boxes, (192, 256))
    return {
        "model": model, "inputs": inputs, "outputs": outputs, "target": target, "reference": reference,
        "prompts": prompts, "categories": categories, "generic": generic, "referring": referring,
    }  # fmt: skip


def _close(actual, expected, atol):
    assert actual.shape == expected.shape
    assert (actual - expected).abs().max().item() <= atol


def test_image_processor_matches_reference_padding(golden):
    processor = DinovImageProcessor(do_resize=False)
    for name in ("target", "reference"):
        pixel_values = processor(golden["inputs"][f"{name}.image"].numpy())["pixel_values"]
        assert torch.equal(pixel_values, golden["inputs"][f"{name}.pixel_values"])


def test_backbone_and_pixel_decoder(golden):
    outputs, target, reference = golden["outputs"], golden["target"], golden["reference"]
    for stage in range(4):
        _close(target.backbone_features[stage], outputs[f"target.backbone.res{stage + 2}"], FEATURES)
        _close(reference.backbone_features[stage], outputs[f"reference.backbone.res{stage + 2}"], FEATURES)
        _close(target.multi_scale_features[stage], outputs[f"target.encoder.multi_scale_features.{stage}"], FEATURES)
        _close(
            reference.multi_scale_features[stage], outputs[f"reference.encoder.multi_scale_features.{stage}"], FEATURES
        )
    _close(target.mask_features, outputs["target.encoder.mask_features"], FEATURES)


def test_prompt_encoder(golden):
    outputs, prompts = golden["outputs"], golden["prompts"]
    for level in range(6):
        assert torch.equal(prompts.mask_pyramid[level], outputs[f"prompt.mask_pyramid.{level}"])
    _close(prompts.content_queries, outputs["prompt.content_query"], FEATURES)
    _close(prompts.content_boxes, outputs["prompt.content_box_unsigmoid"], BOXES)
    _close(golden["categories"], outputs["generic.content_query"], FEATURES)


@pytest.mark.parametrize("task, prefix", [("generic", "generic"), ("referring", "refer")])
def test_decoder_states_and_references(golden, task, prefix):
    outputs, decoded = golden["outputs"], golden[task].decoder
    for layer in range(3):
        _close(decoded.hidden_states[layer], outputs[f"{prefix}.decoder.hs.{layer}"], FEATURES)
    for layer in range(4):
        _close(decoded.reference_boxes[layer], outputs[f"{prefix}.decoder.ref.{layer}"], BOXES)


def test_attention_masks_and_point_grid(golden):
    model, outputs = golden["model"].model, golden["outputs"]
    assert torch.equal(model.generic_attention_mask(60, 2), outputs["generic.decoder.self_attn_mask"])
    assert torch.equal(model.referring_attention_mask(25, 6, 3), outputs["refer.decoder.self_attn_mask"])
    _close(model.point_boxes((192, 256)), outputs["refer.point_boxes_dn"], BOXES)


def test_heads(golden):
    outputs, generic, referring = golden["outputs"], golden["generic"], golden["referring"]
    _close(generic.logits, outputs["generic.pred_logits"], LOGITS)
    _close(generic.pred_masks, outputs["generic.pred_masks"], LOGITS)
    _close(generic.pred_boxes, outputs["generic.pred_boxes"], BOXES)
    _close(referring.match_scores, outputs["refer.pred_match_score"], LOGITS)
    _close(referring.pred_masks, outputs["refer.pred_masks"], LOGITS)
    _close(referring.pred_boxes, outputs["refer.pred_boxes"], BOXES)
    _close(referring.iou_scores, outputs["refer.pred_ious"], LOGITS)


def test_referring_post_processing(golden):
    processor = DinovImageProcessor(do_resize=False)
    result = processor.post_process_referring(golden["referring"], image_size=(203, 275), target_size=(250, 340))[0]
    outputs = golden["outputs"]
    _close(result["masks"], outputs["refer.post.masks"], LOGITS)
    _close(result["masks_before_resize"], outputs["refer.post.ori_masks"], LOGITS)
    _close(result["scores"], outputs["refer.post.scores"], BOXES)


def test_full_forward_equals_the_staged_calls(golden):
    """`forward` (reference image + masks, default: point grid on the target's padded size) agrees with the
    staged calls when the target and the reference share a padded size, and the quirk flag reproduces the reference."""
    model, inputs = golden["model"], golden["inputs"]
    masks = torch.zeros(1, 3, 192, 256)
    masks[0, :, :170, :241] = inputs["reference.prompt_masks"].float()
    with torch.no_grad():
        quirk = model(inputs["target.pixel_values"], inputs["reference.pixel_values"], masks,
                      reference_padded_size=(192, 256))  # fmt: skip
        fixed = model(inputs["target.pixel_values"], inputs["reference.pixel_values"], masks)
    _close(quirk.match_scores, golden["outputs"]["refer.pred_match_score"], LOGITS)
    assert not torch.allclose(fixed.pred_boxes, quirk.pred_boxes)  # the grid now follows the target (224 × 288)
