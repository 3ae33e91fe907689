"""The factorized mask decoder evaluates exactly what transformers' SAM / SAM-HQ decoders compute."""

import pytest
import torch
from torch import nn

from hf_promptseg.models.sam.fast_mask_decoder import FactorizedImageTokens, FastSamMaskDecoder
from tests.testing_utils import TINY_SAM, random_sam, random_sam_hq

TOLERANCE = {"atol": 1e-5, "rtol": 1e-4}


@pytest.fixture(scope="module")
def model():
    return random_sam(std=0.2)


@pytest.fixture(scope="module")
def embeddings(model):
    torch.manual_seed(1)
    return model.get_image_embeddings(torch.randn(1, 3, 256, 256))


def _prompts(kind: str, count: int = 5):
    generator = torch.Generator().manual_seed(2)
    points = torch.rand(1, count, 2, 2, generator=generator) * 256
    labels = torch.tensor([[[1, 0]] * count])
    boxes = torch.sort(torch.rand(1, count, 2, 2, generator=generator) * 256, dim=2)[0].reshape(1, count, 4)
    if kind == "point":
        return {"input_points": points[:, :, :1], "input_labels": labels[:, :, :1]}
    if kind == "two points":
        return {"input_points": points, "input_labels": labels}
    if kind == "box":
        return {"input_boxes": boxes}
    return {"input_points": points[:, :, :1], "input_labels": labels[:, :, :1], "input_boxes": boxes}


def _fast(model, embeddings, prompts, multimask=True):
    sparse, dense = model.prompt_encoder(
        prompts.get("input_points"), prompts.get("input_labels"), prompts.get("input_boxes"), None
    )
    decoder = FastSamMaskDecoder(model.mask_decoder)
    decoded = decoder.decode(embeddings, model.get_image_wide_positional_embeddings(), sparse[0], dense[:1])
    masks = decoder.low_resolution_masks(decoded, torch.arange(sparse.shape[1]), embeddings.shape[-2:], multimask)
    return decoded, masks


@pytest.mark.parametrize("kind", ["point", "two points", "box", "point and box"])
@pytest.mark.parametrize("multimask", [True, False])
def test_matches_stock_decoder(model, embeddings, kind, multimask):
    prompts = _prompts(kind)
    with torch.no_grad():
        stock = model(image_embeddings=embeddings, multimask_output=multimask, **prompts)
    decoded, masks = _fast(model, embeddings, prompts, multimask)
    selected = slice(1, None) if multimask else slice(0, 1)
    torch.testing.assert_close(decoded.iou_scores[:, selected], stock.iou_scores[0], **TOLERANCE)
    torch.testing.assert_close(masks, stock.pred_masks[0], **TOLERANCE)
    assert stock.pred_masks.abs().mean() > 1e3 * TOLERANCE["atol"]  # not a comparison of near-zero tensors


def test_default_sized_decoder_matches(embeddings):
    """Released SAM decoder sizes (256 channels, 8 heads) with a 64×64 embedding."""
    from transformers import SamConfig, SamModel

    torch.manual_seed(0)
    model = SamModel(
        SamConfig(vision_config={**TINY_SAM.vision_config.to_dict(), "output_channels": 256, "num_pos_feats": 128})
    ).eval()
    with torch.no_grad():
        for param in model.mask_decoder.parameters():
            param.add_(torch.randn_like(param) * 0.05)
    image = torch.randn(1, 256, 64, 64)
    prompts = {"input_points": torch.rand(1, 20, 1, 2) * 1024, "input_labels": torch.ones(1, 20, 1, dtype=torch.long)}
    with torch.no_grad():
        stock = model(image_embeddings=image, **prompts)
    decoded, masks = _fast(model, image, prompts)
    torch.testing.assert_close(decoded.iou_scores[:, 1:], stock.iou_scores[0], **TOLERANCE)
    torch.testing.assert_close(masks, stock.pred_masks[0], atol=1e-4, rtol=1e-4)


def test_sam_hq_iou_scores_match():
    model = random_sam_hq(std=0.2)
    with torch.no_grad():
        pixel_values = torch.randn(1, 3, 256, 256)
        embeddings, intermediate = model.get_image_embeddings(pixel_values)
        prompts = _prompts("point")
        stock = model(image_embeddings=embeddings, intermediate_embeddings=intermediate, **prompts)
    sparse, dense = model.prompt_encoder(prompts["input_points"], prompts["input_labels"], None, None)
    decoder = FastSamMaskDecoder(model.mask_decoder)
    assert decoder.is_hq
    decoded = decoder.decode(embeddings, model.get_image_wide_positional_embeddings(), sparse[0], dense[:1])
    fast_iou = torch.sort(decoded.iou_scores[:, 1:4], dim=1, descending=True)[0]
    torch.testing.assert_close(fast_iou, stock.iou_scores[0], **TOLERANCE)


def _random_factorized(prompts=3, tokens=12, channels=8, heads=2, count=3):
    torch.manual_seed(3)
    image = FactorizedImageTokens(torch.randn(tokens, channels), prompts, capacity=2 * (heads * count + 3))
    maps = torch.softmax(torch.randn(prompts, heads, count, tokens), dim=-2)
    values = torch.randn(prompts, heads, count, channels // heads)
    weight = torch.randn(heads, channels // heads, channels)
    image.add_attention_update(maps, values, weight)
    image.add_constant(torch.randn(channels))
    dense = image.shared + torch.einsum("phnt,phnd,hdc->ptc", maps, values, weight) + image.basis[0, -1]
    return image, dense


def test_attention_update_and_layer_norm_are_exact():
    image, dense = _random_factorized()
    torch.testing.assert_close(image.dense(torch.arange(3)), dense, **TOLERANCE)
    norm = nn.LayerNorm(8, eps=1e-5)
    with torch.no_grad():
        norm.weight.normal_(1, 0.3)
        norm.bias.normal_(0, 0.3)
    image.layer_norm(norm)
    torch.testing.assert_close(image.dense(torch.arange(3)), norm(dense), **TOLERANCE)
    image.layer_norm(norm)  # a second norm starts from a per-prompt scale and layer-norm rows
    torch.testing.assert_close(image.dense(torch.arange(3)), norm(norm(dense)), **TOLERANCE)


def test_scores_and_weighted_values_are_exact():
    image, dense = _random_factorized()
    image.layer_norm(nn.LayerNorm(8))
    dense = nn.functional.layer_norm(dense, (8,))
    linear, positional = nn.Linear(8, 8), torch.randn(12, 8)
    tokens = torch.randn(3, 2, 4, 4)
    projected = linear(dense + positional).view(3, 12, 2, 4).transpose(1, 2)  # (P, H, T, d)
    torch.testing.assert_close(image.scores(tokens, linear, positional), tokens @ projected.transpose(-1, -2),
                               **TOLERANCE)  # fmt: skip
    weights = torch.softmax(torch.randn(3, 2, 4, 12), dim=-1)
    values = linear(dense).view(3, 12, 2, 4).transpose(1, 2)
    torch.testing.assert_close(image.weighted_values(weights, linear), weights @ values, **TOLERANCE)


def test_more_than_one_image_is_refused(model):
    decoder = FastSamMaskDecoder(model.mask_decoder)
    with pytest.raises(ValueError, match="one image"):
        decoder.decode(torch.zeros(2, 32, 16, 16), torch.zeros(1, 32, 16, 16), torch.zeros(3, 2, 32),
                       torch.zeros(2, 32, 16, 16))  # fmt: skip
