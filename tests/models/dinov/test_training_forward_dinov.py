import torch

from hf_promptseg.models.dinov.denoising_dinov import build_denoising_queries
from hf_promptseg.models.dinov.prompt_sampling_dinov import DinovTargets
from hf_promptseg.models.dinov.training_forward_dinov import (
    category_queries,
    generic_training_predictions,
    referring_training_predictions,
)
from hf_promptseg.training.dinov_trainer import build_dinov


def test_last_layer_equals_the_inference_heads():
    model = build_dinov("random:tiny").eval()
    pixel_values, masks = torch.randn(1, 3, 64, 64), torch.zeros(1, 2, 64, 64)
    masks[0, 0, 4:30, 4:30] = masks[0, 1, 30:60, 20:50] = 1
    with torch.no_grad():
        features = model.model.get_image_features(pixel_values)
        prompts = model.model.encode_visual_prompts(features.multi_scale_features, masks)
        generic = model(pixel_values, prompt_masks=masks, task="generic")
        layers = generic_training_predictions(model, features, prompts.content_queries, prompts.content_boxes)
        referring = model(pixel_values, prompt_masks=masks, task="referring")
        grid = model.model.point_boxes((64, 64))[None]
        refer_layers = referring_training_predictions(model, features, prompts.content_queries,
                                                      prompts.content_boxes, grid)  # fmt: skip
    assert len(layers) == model.config.decoder_layers
    torch.testing.assert_close(layers[-1].logits, generic.logits)
    torch.testing.assert_close(layers[-1].pred_masks, generic.pred_masks)
    torch.testing.assert_close(layers[-1].pred_boxes, generic.pred_boxes)
    torch.testing.assert_close(refer_layers[-1].match_scores, referring.match_scores)
    torch.testing.assert_close(refer_layers[-1].iou_scores, referring.iou_scores)
    torch.testing.assert_close(refer_layers[-1].pred_masks, referring.pred_masks)


def test_category_queries_average_examples_and_denoising_adds_queries():
    model = build_dinov("random:tiny").eval()
    pixel_values, masks = torch.randn(2, 3, 64, 64), torch.zeros(2, 1, 64, 64)
    masks[:, 0, 8:40, 8:40] = 1
    with torch.no_grad():
        features = model.model.get_image_features(pixel_values)
        tokens = model.model.encode_visual_prompts(features.multi_scale_features, masks).tokens
        queries, boxes = category_queries(model, features, masks, torch.tensor([[0.5, 0.5]]), batch=2)
        expected, _ = model.model.prompt_queries(tokens.mean(0, keepdim=True))
        torch.testing.assert_close(queries[1], expected[0])
        target = DinovTargets(masks[0], torch.tensor([[0.375, 0.375, 0.5, 0.5]]), torch.tensor([0]))
        dn = build_denoising_queries(model.model.label_enc.weight[0], [target, target], num_denoising=4)
        layers = generic_training_predictions(model, features, queries, boxes, dn)
    assert layers[0].dn_masks.shape == (2, 4, 16, 16) and layers[0].pred_masks.shape == (2, 8, 16, 16)
    assert layers[0].logits.shape == (2, 8, 1)
