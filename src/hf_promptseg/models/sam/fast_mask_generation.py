"""Candidate masks of one point batch for automatic mask generation, the fast way, with the stock filters.

`generate_candidates` is what `pipeline("mask-generation", fast_decoder=True)` runs per point batch; it also
serves callers who keep an image's embeddings and segment it many times. Filtering follows transformers'
`SamImageProcessor.filter_masks` step by step (and calls its helpers), but the predicted-IoU test runs before any
mask is upscaled, so only survivors pay for upscaling and full-resolution stability scores.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from transformers.models.sam.image_processing_pil_sam import (
    _batched_mask_to_box,
    _compute_stability_score,
    _is_box_near_crop_edge,
    _pad_masks,
)

from hf_promptseg.models.sam.fast_mask_decoder import FastSamMaskDecoder
from hf_promptseg.utils.run_length import encode_run_lengths

DECODE_CHUNK = 8  # prompts per factorized decoding pass (bigger passes spend their time in page faults on CPU)
UPSCALE_CHUNK = 2  # prompts whose masks are upscaled together


@dataclass
class MaskCandidates:
    """Masks that passed the filters: RLEs in the full image's frame, (N,) scores, (N, 4) XYXY boxes and (N,)
    stability scores (IoU of the mask binarised at `mask_threshold` ± `stability_score_offset`)."""

    run_lengths: list[dict]
    scores: torch.Tensor
    boxes: torch.Tensor
    stability_scores: torch.Tensor | None = None


def _sorted_multimask_iou(decoder: FastSamMaskDecoder, iou_scores: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """The three multimask IoU predictions as the model returns them (SAM-HQ sorts them, descending)."""
    if decoder.is_hq:
        return torch.sort(iou_scores[:, 1 : decoder.decoder.num_mask_tokens - 1], dim=1, descending=True)[0], True
    return iou_scores[:, 1:], False


@torch.no_grad()
def generate_candidates(
    decoder: FastSamMaskDecoder,
    image_embeddings: torch.Tensor,
    image_positional_embeddings: torch.Tensor,
    sparse_prompt_embeddings: torch.Tensor,
    dense_prompt_embeddings: torch.Tensor,
    intermediate_embeddings: list[torch.Tensor] | None,
    *,
    pred_iou_thresh: float,
    stability_score_thresh: float,
    mask_threshold: float,
    stability_score_offset: float,
    post_process: Callable[[torch.Tensor], torch.Tensor],
    crop_box: list[int],
    full_image_size: list[int],
    high_resolution_features: list[torch.Tensor] | None = None,
) -> MaskCandidates:
    """Decode P point prompts of one image (crop) and keep the masks that pass the automatic-generation filters.

    Args:
        decoder: `FastSamMaskDecoder` over the model's mask decoder.
        image_embeddings: (1, C, h, w) embedding of the crop; `image_positional_embeddings` the same shape.
        sparse_prompt_embeddings: (P, n, C) prompt-encoder output; `dense_prompt_embeddings` (1, C, h, w).
        intermediate_embeddings: SAM-HQ's early ViT features of the crop (None for SAM).
        post_process: maps (K, 4h, 4w) low-resolution logits to (K, H_crop, W_crop) logits in the crop's frame
            (the image processor's `post_process_masks`).
        crop_box, full_image_size: the crop's XYXY box in the image, and the image's (height, width).
        high_resolution_features: SAM2's two high-resolution maps of the crop (with a `FastSam2MaskDecoder`).
    """
    prompts = sparse_prompt_embeddings.shape[0]
    height, width = image_embeddings.shape[-2:]
    extra = {} if high_resolution_features is None else {"high_resolution_features": high_resolution_features}
    chunks = [
        decoder.decode(
            image_embeddings,
            image_positional_embeddings,
            sparse_prompt_embeddings[s : s + DECODE_CHUNK],
            dense_prompt_embeddings,
            **extra,
        )
        for s in range(0, prompts, DECODE_CHUNK)
    ]
    iou, _ = _sorted_multimask_iou(decoder, torch.cat([chunk.iou_scores for chunk in chunks]))
    keep = iou > pred_iou_thresh if pred_iou_thresh > 0.0 else torch.ones_like(iou, dtype=torch.bool)
    survivors = keep.any(dim=1).nonzero()[:, 0].tolist()
    run_lengths, scores, boxes, stabilities = [], [], [], []
    original_height, original_width = full_image_size
    offset = torch.tensor([crop_box[0], crop_box[1], crop_box[0], crop_box[1]])
    for start in range(0, len(survivors), UPSCALE_CHUNK):
        index = torch.tensor(survivors[start : start + UPSCALE_CHUNK])
        if decoder.is_hq:
            logits = decoder.decoder(
                image_embeddings=image_embeddings,
                image_positional_embeddings=image_positional_embeddings,
                sparse_prompt_embeddings=sparse_prompt_embeddings[index][None],
                dense_prompt_embeddings=dense_prompt_embeddings,
                multimask_output=True,
                hq_token_only=False,
                intermediate_embeddings=intermediate_embeddings,
            )[0][0]
        else:
            parts = []
            for chunk_index, chunk in enumerate(chunks):
                local = index[(index // DECODE_CHUNK) == chunk_index] - chunk_index * DECODE_CHUNK
                if len(local):
                    parts.append(decoder.low_resolution_masks(chunk, local, (height, width)))
            logits = torch.cat(parts)
        selected = keep[index]
        masks = post_process(logits[selected])
        chunk_scores = iou[index][selected]
        stability = _compute_stability_score(masks, mask_threshold, stability_score_offset)
        if stability_score_thresh > 0.0:
            stable = stability > stability_score_thresh
            masks, chunk_scores, stability = masks[stable], chunk_scores[stable], stability[stable]
        masks = masks > mask_threshold
        chunk_boxes = _batched_mask_to_box(masks)
        inside = ~_is_box_near_crop_edge(chunk_boxes, crop_box, [0, 0, original_width, original_height])
        masks, chunk_scores, chunk_boxes = masks[inside], chunk_scores[inside], chunk_boxes[inside]
        stabilities.append(stability[inside])
        masks = _pad_masks(masks, crop_box, original_height, original_width)
        run_lengths += encode_run_lengths(masks)
        scores.append(chunk_scores)
        boxes.append(chunk_boxes + offset)
    return MaskCandidates(
        run_lengths=run_lengths,
        scores=torch.cat(scores) if scores else iou.new_zeros(0),
        boxes=torch.cat(boxes) if boxes else torch.zeros(0, 4, dtype=torch.long),
        stability_scores=torch.cat(stabilities) if stabilities else iou.new_zeros(0),
    )
