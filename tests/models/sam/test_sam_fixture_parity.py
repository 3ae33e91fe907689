"""Golden parity: the converted model and our processor reproduce segment-anything on ../shared/fixtures/sam."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForMaskGeneration, AutoProcessor

from hf_promptseg.models.sam import convert_sam_checkpoint
from tests.conftest import fixture_dir

# Tolerances from the fixture README (float32 re-implementation): atol 1e-4 for embeddings and tokens,
# 2e-5 for low-res masks, IoU predictions and full-size logits.
EMBEDDING_ATOL = 1e-4
MASK_ATOL = 2e-5


@pytest.fixture(scope="module")
def sam_fixture():
    folder = fixture_dir("sam")
    return {
        "config": json.loads((folder / "reference_config.json").read_text()),
        "inputs": load_file(folder / "inputs.safetensors"),
        "outputs": load_file(folder / "outputs.safetensors"),
        "checkpoint": folder / "reference_state_dict.safetensors",
    }


@pytest.fixture(scope="module")
def converted(sam_fixture, tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("converted") / "sam-tiny"
    convert_sam_checkpoint(sam_fixture["checkpoint"], out_dir)
    model = AutoModelForMaskGeneration.from_pretrained(out_dir, dtype=torch.float32).eval()
    processor = AutoProcessor.from_pretrained(out_dir)
    return model, processor


def _reference_pixel_values(resized: torch.Tensor, config: dict) -> torch.Tensor:
    mean = torch.tensor(config["pixel_mean"]).view(3, 1, 1)
    std = torch.tensor(config["pixel_std"]).view(3, 1, 1)
    x = (resized.permute(2, 0, 1).float() - mean) / std
    return torch.nn.functional.pad(x, (0, 1024 - x.shape[-1], 0, 1024 - x.shape[-2]))[None]


def _run_case(model, processor, image, case, inputs, outputs, prefix):
    prompts = case["prompts"]
    kwargs = {}
    if "point_coords" in prompts:
        kwargs["input_points"] = [[prompts["point_coords"]]]
        kwargs["input_labels"] = [[prompts["point_labels"]]]
    if "box" in prompts:
        kwargs["input_boxes"] = [[prompts["box"]]]
    encoded = processor(image, return_tensors="pt", **kwargs)
    for key in ("input_points", "input_boxes"):
        if key in encoded:
            encoded[key] = encoded[key].to(torch.float32)
    if "point_coords" in prompts:
        torch.testing.assert_close(
            encoded["input_points"][0, 0], inputs[f"{prefix}.point_coords_input"][0], atol=1e-3, rtol=0
        )
    if "box" in prompts:
        torch.testing.assert_close(encoded["input_boxes"][0], inputs[f"{prefix}.box_input"][0], atol=1e-3, rtol=0)
    input_masks = inputs.get(f"{prefix}.mask_input")
    if input_masks is not None:
        input_masks = input_masks[:, None]

    captured = {}
    hook = model.mask_decoder.transformer.register_forward_hook(lambda m, a, o: captured.update(tokens=o[0]))
    with torch.no_grad():
        sparse, dense = model.prompt_encoder(
            input_points=encoded.get("input_points"),
            input_labels=encoded.get("input_labels"),
            input_boxes=encoded.get("input_boxes"),
            input_masks=input_masks,
        )
        result = model(
            pixel_values=encoded["pixel_values"],
            input_points=encoded.get("input_points"),
            input_labels=encoded.get("input_labels"),
            input_boxes=encoded.get("input_boxes"),
            input_masks=input_masks,
            multimask_output=case["multimask_output"],
        )
    hook.remove()
    masks_logits = processor.post_process_masks(
        result.pred_masks, encoded["original_sizes"], encoded["reshaped_input_sizes"], binarize=False
    )[0]
    return {
        "sparse_embeddings": sparse[0],
        "dense_embeddings": dense,
        "decoder_tokens_out": captured["tokens"][0],
        "low_res_masks": result.pred_masks[0],
        "iou_predictions": result.iou_scores[0],
        "masks_logits": masks_logits[0][None],
    }


def test_processor_pixel_values_match_reference(sam_fixture, converted):
    _, processor = converted
    for index in (0, 1):
        image = sam_fixture["inputs"][f"img{index}.original"].numpy()
        encoded = processor(image, return_tensors="pt")
        expected = _reference_pixel_values(sam_fixture["inputs"][f"img{index}.resized"], sam_fixture["config"])
        assert encoded["reshaped_input_sizes"][0].tolist() == list(
            sam_fixture["inputs"][f"img{index}.resized"].shape[:2]
        )
        torch.testing.assert_close(encoded["pixel_values"], expected, atol=1e-5, rtol=0)


def test_image_embeddings_and_dense_pe_match_reference(sam_fixture, converted):
    model, processor = converted
    outputs = sam_fixture["outputs"]
    with torch.no_grad():
        torch.testing.assert_close(
            model.get_image_wide_positional_embeddings(), outputs["image_pe"], atol=1e-5, rtol=0
        )
        for index in (0, 1):
            encoded = processor(sam_fixture["inputs"][f"img{index}.original"].numpy(), return_tensors="pt")
            embeddings = model.get_image_embeddings(encoded["pixel_values"])
            torch.testing.assert_close(
                embeddings, outputs[f"img{index}.image_embeddings"], atol=EMBEDDING_ATOL, rtol=0
            )


def test_encoder_blocks_match_reference(sam_fixture, converted):
    model, processor = converted
    outputs = sam_fixture["outputs"]
    captured = {}
    hooks = [model.vision_encoder.patch_embed.register_forward_hook(lambda m, a, o: captured.update(patch=o))]
    for i, layer in enumerate(model.vision_encoder.layers):
        hooks.append(
            layer.register_forward_hook(lambda m, a, o, i=i: captured.update({i: o[0] if isinstance(o, tuple) else o}))
        )
    encoded = processor(sam_fixture["inputs"]["img0.original"].numpy(), return_tensors="pt")
    with torch.no_grad():
        model.get_image_embeddings(encoded["pixel_values"])
    for hook in hooks:
        hook.remove()
    torch.testing.assert_close(
        captured["patch"][:, :16, :16], outputs["img0.patch_embed_crop"], atol=EMBEDDING_ATOL, rtol=0
    )
    for i in range(4):
        torch.testing.assert_close(
            captured[i][:, :16, :16], outputs[f"img0.block{i}_out_crop"], atol=EMBEDDING_ATOL, rtol=0
        )


@pytest.mark.parametrize("case_index", range(5))
def test_prompt_cases_match_reference(sam_fixture, converted, case_index):
    model, processor = converted
    case = sam_fixture["config"]["cases"][case_index]
    prefix = f"img{case['image']}.{case['name']}"
    outputs = sam_fixture["outputs"]
    image = sam_fixture["inputs"][f"img{case['image']}.original"].numpy()
    got = _run_case(model, processor, image, case, sam_fixture["inputs"], outputs, prefix)
    for name, value in got.items():
        key = f"{prefix}.{name}"
        if key not in outputs:
            assert name == "dense_embeddings"
            continue
        atol = EMBEDDING_ATOL if name in {"sparse_embeddings", "dense_embeddings", "decoder_tokens_out"} else MASK_ATOL
        torch.testing.assert_close(value.reshape(outputs[key].shape), outputs[key], atol=atol, rtol=0, msg=key)
    reference_masks = outputs[f"{prefix}.masks"]
    flipped = ((got["masks_logits"] > 0) != reference_masks).sum().item()
    assert flipped <= 2, f"{prefix}: {flipped} mask pixels differ (fixture allows ~2 near-zero logits)"


def test_converted_dir_has_expected_files(converted, tmp_path, sam_fixture):
    out = convert_sam_checkpoint(sam_fixture["checkpoint"], tmp_path / "out")
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "README.md",
        "config.json",
        "model.safetensors",
        "preprocessor_config.json",
        "processor_config.json",
    ]
    assert "pipeline_tag: mask-generation" in (out / "README.md").read_text()
    preprocessor = json.loads((out / "preprocessor_config.json").read_text())
    assert preprocessor["image_processor_type"] == "HfPromptsegSamImageProcessor"
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "sam"
    assert config["mask_decoder_config"]["layer_norm_eps"] == 1e-5
    assert np.isclose(config["vision_config"]["mlp_ratio"], 4.0)
