"""DINOv's training-time forward passes: every decoder layer's predictions (deep supervision) for both tasks.

`DinovForVisualPromptSegmentation.forward` decodes the inference layouts (a 20×20 point grid, the last layer only);
training uses the layouts of spec §1.7 instead: generic `[DN | proposals | categories]` with the category queries
aggregated from prompts on *other* images of the batch (in-context), and referring `[clicks × K | contents]` with
one query group per sampled click. The heads are applied exactly as the inference heads do (double LayerNorm,
raw dot-product scores, box refinement from each layer's input reference).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from hf_promptseg.models.dinov.denoising_dinov import DinovDenoisingQueries, denoising_attention_mask
from hf_promptseg.models.dinov.modeling_dinov import DinovForVisualPromptSegmentation, inverse_sigmoid


@dataclass
class DinovLayerPredictions:
    """One decoder layer's predictions. Generic: `logits` (B, Q, K) over proposals; referring: `match_scores`
    (B, N, P·K) and `iou_scores` (B, P, K). `pred_masks`/`pred_boxes` cover proposals (or click tokens);
    `dn_masks`/`dn_boxes` the denoising queries (generic with DN only)."""

    pred_masks: torch.Tensor
    pred_boxes: torch.Tensor
    logits: torch.Tensor | None = None
    match_scores: torch.Tensor | None = None
    iou_scores: torch.Tensor | None = None
    dn_masks: torch.Tensor | None = None
    dn_boxes: torch.Tensor | None = None


def _unwrap(model) -> DinovForVisualPromptSegmentation:
    return getattr(model, "module", model)


def _heads(model, hidden, reference, mask_features, stop: int):
    """Double-normed hidden states, masks and single-normed-box refinements of the first `stop` queries."""
    normed = model.model.decoder.layer_norm(hidden)
    masks = torch.einsum("bqc,bchw->bqhw", model.mask_embed(normed[:, :stop]), mask_features)
    return normed, masks


def category_queries(model, features, prompt_masks: torch.Tensor, aggregation: torch.Tensor, batch: int):
    """(B, K, C) content queries and boxes: prompt tokens of every image's prompts, averaged per category."""
    model = _unwrap(model)
    tokens = model.model.encode_visual_prompts(features.multi_scale_features, prompt_masks).tokens
    pooled = aggregation.to(tokens) @ tokens.flatten(0, 1)
    return model.model.prompt_queries(pooled[None].expand(batch, -1, -1))


def generic_training_predictions(
    model, features, content_queries, content_boxes, denoising: DinovDenoisingQueries | None = None
) -> list[DinovLayerPredictions]:
    """Per-layer generic predictions for target `features` (B images) and (B, K, C) category queries."""
    model = _unwrap(model)
    core, config = model.model, model.config
    batch, categories = content_queries.shape[:2]
    proposals = config.num_queries
    queries = [core.query_content.weight[None].expand(batch, -1, -1), content_queries]
    boxes = [core.query_anchor_boxes.weight[None].expand(batch, -1, -1), content_boxes]
    mask = core.generic_attention_mask(proposals, categories, content_queries.device)
    dn = 0
    if denoising is not None:
        dn = denoising.size
        queries.insert(0, denoising.queries.to(content_queries))
        boxes.insert(0, denoising.boxes.to(content_boxes))
        mask = denoising_attention_mask(denoising, mask, proposals)
    decoded = core.decoder(torch.cat(queries, 1), torch.cat(boxes, 1), mask, features.multi_scale_features)
    outputs = []
    for hidden, reference in zip(decoded.hidden_states, decoded.reference_boxes[:-1]):
        normed, masks = _heads(model, hidden, reference, features.mask_features, dn + proposals)
        embedded = normed @ model.generic_projection
        logits = embedded[:, dn : dn + proposals] @ embedded[:, dn + proposals :].transpose(1, 2)
        box = core.decoder.bbox_head(hidden[:, : dn + proposals]) + inverse_sigmoid(reference[:, : dn + proposals])
        box = box.sigmoid()
        outputs.append(
            DinovLayerPredictions(
                pred_masks=masks[:, dn:],
                pred_boxes=box[:, dn:],
                logits=logits,
                dn_masks=masks[:, :dn] if dn else None,
                dn_boxes=box[:, :dn] if dn else None,
            )  # fmt: skip
        )
    return outputs


def referring_training_predictions(model, features, content_queries, content_boxes, click_boxes):
    """Per-layer referring predictions: K granularity tokens per (B, P, 4) cxcywh click box, N content queries."""
    model = _unwrap(model)
    core, config = model.model, model.config
    batch, prompts = content_queries.shape[:2]
    clicks, tokens = click_boxes.shape[1], config.num_granularity_tokens
    base = core.label_enc.weight[0] + core.pb_embedding.weight[1]
    position = (base + core.granularity_tokens.weight).repeat(clicks, 1)
    position_boxes = inverse_sigmoid(click_boxes.to(content_boxes)).repeat_interleave(tokens, dim=1)
    queries = torch.cat([position[None].expand(batch, -1, -1), content_queries], 1)
    boxes = torch.cat([position_boxes, content_boxes], 1)
    mask = core.referring_attention_mask(clicks, tokens, prompts, queries.device)
    decoded = core.decoder(queries, boxes, mask, features.multi_scale_features)
    count = clicks * tokens
    outputs = []
    for hidden, reference in zip(decoded.hidden_states, decoded.reference_boxes[:-1]):
        normed, masks = _heads(model, hidden, reference, features.mask_features, count)
        embedded = normed @ model.referring_projection
        box = (core.decoder.bbox_head(normed[:, :count]) + inverse_sigmoid(reference[:, :count])).sigmoid()
        outputs.append(
            DinovLayerPredictions(
                pred_masks=masks,
                pred_boxes=box,
                match_scores=embedded[:, count:] @ embedded[:, :count].transpose(1, 2),
                iou_scores=model.iou_head(normed[:, :count]).view(batch, clicks, tokens),
            )  # fmt: skip
        )
    return outputs


__all__ = [
    "DinovLayerPredictions",
    "category_queries",
    "generic_training_predictions",
    "referring_training_predictions",
]
