"""FastSam2MaskDecoder against transformers' Sam2MaskDecoder (and SAM3-tracker's) on tiny random models."""

import pytest
import torch
from transformers import Sam3TrackerConfig, Sam3TrackerModel

from hf_promptseg.models.sam2 import FastSam2MaskDecoder
from tests.testing_utils import random_sam, random_sam2, variance_preserving_init

ATOL = 1e-5


def _stock_and_fast(model, pixel_values, points, labels, multimask):
    embeddings = model.get_image_embeddings(pixel_values)
    with torch.no_grad():
        stock = model(
            image_embeddings=embeddings, input_points=points, input_labels=labels, multimask_output=multimask
        )
        sparse, dense = model.prompt_encoder(points, labels, None, None)
    decoder = FastSam2MaskDecoder(model.mask_decoder)
    decoded = decoder.decode(
        embeddings[-1], model.get_image_wide_positional_embeddings(), sparse[0], dense[:1], embeddings[:2]
    )
    index = torch.arange(points.shape[1])
    masks = decoder.low_resolution_masks(decoded, index, embeddings[-1].shape[-2:], multimask_output=multimask)
    return stock, decoded, masks


@pytest.mark.parametrize("multimask", [True, False])
def test_points_match_transformers(multimask):
    torch.manual_seed(1)
    model = random_sam2()
    points = torch.rand(1, 12, 2, 2) * 64
    labels = torch.tensor([[[1, 0]] * 6 + [[1, -10]] * 6])
    stock, decoded, masks = _stock_and_fast(model, torch.randn(1, 3, 64, 64), points, labels, multimask)
    iou = decoded.iou_scores[:, 1:] if multimask else decoded.iou_scores[:, :1]
    torch.testing.assert_close(masks, stock.pred_masks[0], atol=ATOL, rtol=0)
    torch.testing.assert_close(iou, stock.iou_scores[0], atol=ATOL, rtol=0)
    torch.testing.assert_close(decoded.object_score_logits, stock.object_score_logits[0], atol=ATOL, rtol=0)
    assert stock.pred_masks.std() > 0.1 and stock.iou_scores.std() > 0.003  # prompts really differ


def test_sam3_tracker_decoder_matches_transformers():
    config = Sam3TrackerConfig(
        vision_config={
            "backbone_config": {
                "model_type": "sam3_vit_model", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                "num_attention_heads": 2, "image_size": 56, "patch_size": 14, "window_size": 2,
                "global_attn_indexes": [0], "pretrain_image_size": 28,
            },
            "fpn_hidden_size": 32,
            "backbone_feature_sizes": [[16, 16], [8, 8], [4, 4]],
        },
        prompt_encoder_config={"hidden_size": 32, "image_size": 56, "patch_size": 14},
        mask_decoder_config={"hidden_size": 32, "mlp_dim": 64, "num_attention_heads": 2, "iou_head_hidden_dim": 32},
    )  # fmt: skip
    model = variance_preserving_init(Sam3TrackerModel(config))
    points = torch.rand(1, 5, 1, 2) * 56
    stock, decoded, masks = _stock_and_fast(
        model, torch.randn(1, 3, 56, 56), points, torch.ones(1, 5, 1, dtype=torch.long), True
    )
    torch.testing.assert_close(masks, stock.pred_masks[0], atol=ATOL, rtol=0)
    torch.testing.assert_close(decoded.iou_scores[:, 1:], stock.iou_scores[0], atol=ATOL, rtol=0)


def test_bad_inputs_are_refused():
    with pytest.raises(TypeError, match="SAM2-style mask decoder.*SamMaskDecoder"):
        FastSam2MaskDecoder(random_sam().mask_decoder)
    model = random_sam2()
    embeddings = model.get_image_embeddings(torch.randn(1, 3, 64, 64))
    sparse, dense = model.prompt_encoder(
        torch.rand(1, 2, 1, 2) * 64, torch.ones(1, 2, 1, dtype=torch.long), None, None
    )
    decoder = FastSam2MaskDecoder(model.mask_decoder)
    positional = model.get_image_wide_positional_embeddings()
    with pytest.raises(ValueError, match="two high-resolution maps"):
        decoder.decode(embeddings[-1], positional, sparse[0], dense[:1])
    with pytest.raises(ValueError, match="4x and 2x the 4x4 embedding grid"):
        decoder.decode(embeddings[-1], positional, sparse[0], dense[:1], embeddings[1:][::-1])
