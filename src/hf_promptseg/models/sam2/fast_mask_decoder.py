"""SAM2's mask decoder for many prompts on one image, sharing the image-side work (the `FastSamMaskDecoder` method).

SAM2's two-way transformer is SAM's (same attention blocks, `o_proj` for `out_proj`), so the factorized image tokens
of `hf_promptseg.models.sam.fast_mask_decoder` apply unchanged. What differs is around it: an object-score token
comes first among the output tokens (then the IoU token and the mask tokens), and the output upscaling adds the
image's projected high-resolution Hiera features (`conv_s1`, `conv_s0` outputs) after each transposed convolution;
both are per-image tensors, added once per surviving prompt. `tests/models/sam2/test_fast_mask_decoder.py` checks
masks, IoU and object scores against transformers' `Sam2MaskDecoder`.
"""

from __future__ import annotations

import torch
from torch import nn

from hf_promptseg.models.sam.fast_mask_decoder import DecodedPrompts, FastSamMaskDecoder


def is_sam2_mask_decoder(mask_decoder: nn.Module) -> bool:
    """Whether a mask decoder is SAM2's kind (SAM2, SAM3-tracker, EdgeTAM): object-score token and skip projections."""
    return all(hasattr(mask_decoder, name) for name in ("obj_score_token", "conv_s0", "conv_s1"))


class FastSam2MaskDecoder(FastSamMaskDecoder):
    """Runs a transformers `Sam2MaskDecoder` (or SAM3-tracker's / EdgeTAM's) for many prompts of one image, exactly.

    Example:
        >>> import torch
        >>> from transformers import Sam2Config, Sam2Model
        >>> from hf_promptseg.models.sam2.fast_mask_decoder import FastSam2MaskDecoder
        >>> model = Sam2Model(Sam2Config()).eval()
        >>> *skips, embeddings = model.get_image_embeddings(torch.randn(1, 3, 1024, 1024))  # doctest: +SKIP
        >>> sparse, dense = model.prompt_encoder(torch.rand(1, 8, 1, 2) * 1024, torch.ones(1, 8, 1), None, None)
        >>> decoder = FastSam2MaskDecoder(model.mask_decoder)
        >>> decoded = decoder.decode(  # doctest: +SKIP
        ...     embeddings, model.get_image_wide_positional_embeddings(), sparse[0], dense[:1], skips
        ... )
        >>> decoded.iou_scores.shape, decoded.object_score_logits.shape  # doctest: +SKIP
        (torch.Size([8, 4]), torch.Size([8, 1]))
    """

    iou_token_index = 1
    first_mask_token = 2

    def __init__(self, mask_decoder: nn.Module) -> None:
        if not is_sam2_mask_decoder(mask_decoder):
            raise TypeError(
                f"`mask_decoder` must be a SAM2-style mask decoder (object-score token, conv_s0/conv_s1), got "
                f"{type(mask_decoder).__name__}; use FastSamMaskDecoder for SAM and SAM-HQ"
            )
        super().__init__(mask_decoder)
        self.is_hq = False

    def output_tokens(self) -> torch.Tensor:
        decoder = self.decoder
        return torch.cat([decoder.obj_score_token.weight, decoder.iou_token.weight, decoder.mask_tokens.weight])

    @torch.no_grad()
    def decode(
        self,
        image_embeddings: torch.Tensor,
        image_positional_embeddings: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
        high_resolution_features: list[torch.Tensor] | tuple[torch.Tensor, torch.Tensor] | None = None,
        image_key: object | None = None,
    ) -> DecodedPrompts:
        """Two-way transformer, IoU and object-score heads for P prompts of one image.

        Args:
            image_embeddings: (1, C, h, w), the last of `Sam2Model.get_image_embeddings`'s maps.
            image_positional_embeddings: (1, C, h, w) dense positional encoding.
            sparse_prompt_embeddings: (P, n_prompt, C) point/box embeddings from the prompt encoder.
            dense_prompt_embeddings: (1, C, h, w), the same for every prompt (no mask inputs).
            high_resolution_features: the first two maps of `get_image_embeddings` ((1, C/8, 4h, 4w) and
                (1, C/4, 2h, 2w)); needed for `low_resolution_masks`.
            image_key: as for `FastSamMaskDecoder.decode` (it names the high-resolution maps too).
        """
        if high_resolution_features is None or len(high_resolution_features) != 2:
            raise ValueError(
                "`high_resolution_features` must be the two high-resolution maps of `get_image_embeddings` "
                "(its first two outputs)"
            )
        height, width = image_embeddings.shape[-2:]
        finest, middle = high_resolution_features
        if tuple(finest.shape[-2:]) != (4 * height, 4 * width) or tuple(middle.shape[-2:]) != (2 * height, 2 * width):
            raise ValueError(
                f"`high_resolution_features` must be 4x and 2x the {height}x{width} embedding grid, got "
                f"{tuple(finest.shape[-2:])} and {tuple(middle.shape[-2:])}"
            )
        decoded = super().decode(
            image_embeddings,
            image_positional_embeddings,
            sparse_prompt_embeddings,
            dense_prompt_embeddings,
            image_key=image_key,
        )
        decoded.object_score_logits = self.decoder.pred_obj_score_head(decoded.tokens[:, 0])
        decoded.high_resolution_features = (finest[:1], middle[:1])
        return decoded


__all__ = ["FastSam2MaskDecoder", "is_sam2_mask_decoder"]
