"""`pipeline("mask-generation")` that runs on this stack: no torchvision, `batch_size > 1` works, and a fast path.

Registered in place of transformers' own class for the task at `import hf_promptseg`; outputs are the same
(`masks`, `scores`, optional `rle_mask` and `bounding_boxes`).

The fast path (`fast_decoder=True`; the default for models saved by hf_promptseg) decodes all points of an image
with `FastSamMaskDecoder` (exact, image-side work shared between prompts), filters candidates on their predicted
IoU before any mask is upscaled, upscales survivors in small chunks, and carries masks as run-length encodings
built without per-pixel Python work.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import torch
from transformers import AutoModelForMaskGeneration
from transformers.pipelines.mask_generation import MaskGenerationPipeline

from hf_promptseg.models.sam.embedding_cache import EmbeddingCache, caching_image_embeddings, resolve_cache
from hf_promptseg.models.sam.encoder_backends import check_encoder_backend
from hf_promptseg.models.sam.fast_mask_decoder import FastSamMaskDecoder
from hf_promptseg.models.sam.fast_mask_generation import generate_candidates
from hf_promptseg.models.sam.image_processing_sam import (
    HfPromptsegSamImageProcessor,
    kept_candidates,
    validate_images,
)
from hf_promptseg.models.sam.row_chunked_attention import row_chunked_vision_attention
from hf_promptseg.models.sam2.fast_mask_decoder import FastSam2MaskDecoder, is_sam2_mask_decoder
from hf_promptseg.models.sam2.image_processing_sam2 import HfPromptsegSam2ImageProcessor
from hf_promptseg.pipelines import register_task_pipeline
from hf_promptseg.utils.boxes import nms
from hf_promptseg.utils.validation import check_known_arguments, normalize_mask_generation_arguments, to_pil_image

# transformers' `MaskGenerationPipeline._sanitize_parameters` reads these and silently drops any other name
TRANSFORMERS_ARGUMENTS = (
    "points_per_batch", "points_per_crop", "crops_n_layers", "crop_overlap_ratio", "crop_n_points_downscale_factor",
    "timeout", "pred_iou_thresh", "stability_score_offset", "mask_threshold", "stability_score_thresh",
    "max_hole_area", "max_sprinkle_area", "crops_nms_thresh", "output_rle_mask", "output_bboxes_mask",
)  # fmt: skip
OUR_ARGUMENTS = ("fast_decoder", "embedding_cache", "image_embeddings", "output_stability_scores", "encoder_backend")


def _stack_intermediate(intermediate: Any) -> list[torch.Tensor]:
    """SAM-HQ's per-layer ViT features as a list of (B, H, W, C) tensors, whatever nesting chunking/collation left.

    A chunk carries the list returned by `get_image_embeddings`; the pipeline's iterators may wrap it once more,
    and collating `batch_size > 1` chunks gives one such list per chunk, which is regrouped here per layer.
    """
    while (
        isinstance(intermediate, (list, tuple))
        and len(intermediate) == 1
        and isinstance(intermediate[0], (list, tuple))
    ):
        intermediate = intermediate[0]
    if isinstance(intermediate, (list, tuple)) and intermediate and isinstance(intermediate[0], (list, tuple)):
        return [torch.cat(list(layers), dim=0) for layers in zip(*intermediate)]
    return list(intermediate)


class HfPromptsegMaskGenerationPipeline(MaskGenerationPipeline):
    """Automatic mask generation with SAM-family models.

    Differences from transformers' `MaskGenerationPipeline`:
    - `batch_size > 1` runs several point batches (of one or several images) through the model in one call
      (transformers' class fails there, upstream issue 37805);
    - the final NMS is torch-only (no torchvision);
    - `fast_decoder=True` (default for models saved by hf_promptseg, opt-in for any other SAM, SAM-HQ or SAM with
      a SAM-Adapter) returns the same masks several times faster with a fraction of the memory: see
      `benchmarks/mask_generation.py`. It also runs the ViT's global attention a few rows at a time (exact, bounded
      memory). `fast_decoder=False` runs transformers' own path.
    - image embeddings are reused across calls on the same image (an LRU keyed by content, see
      `hf_promptseg.models.sam.embedding_cache`): a threshold sweep costs one encoder pass. `embedding_cache=`
      takes an `EmbeddingCache` or False (default: the process-wide cache); `image_embeddings=` takes the
      embedding of the image computed beforehand (`model.get_image_embeddings`, no crops).
    - `encoder_backend=` runs the ViT with one of `encoder_backends.ENCODER_BACKENDS` ("default": the module as
      loaded, row-chunked on the fast path; "sdpa", "compile", "onnx", ...: see docs/app.md for their speed).
    - `tile_size=T, tile_overlap=O` runs a large image tile by tile at native resolution and merges masks cut by
      tile borders (`hf_promptseg.corpus.tiling`); it returns COCO RLEs (`rle_mask`), `scores`,
      `stability_scores` and `bounding_boxes`, never image-sized dense masks.

    Example:
        >>> import numpy as np, hf_promptseg
        >>> from transformers import pipeline
        >>> generator = pipeline("mask-generation", model="path/to/converted-sam")  # doctest: +SKIP
        >>> outputs = generator(np.zeros((64, 64, 3), np.uint8), points_per_batch=64, batch_size=2)  # doctest: +SKIP
        >>> sorted(outputs)  # doctest: +SKIP
        ['masks', 'scores']
    """

    def __call__(self, image, *args, **kwargs):
        if kwargs.get("tile_size") is None:
            kwargs.pop("tile_size", None)
            return super().__call__(image, *args, **kwargs)
        from hf_promptseg.corpus.tiling import tiled_mask_generation

        tiling = {name: kwargs.pop(name) for name in ("tile_size", "tile_overlap", "merge_iou") if name in kwargs}
        for name in ("output_rle_mask", "output_bboxes_mask", "output_stability_scores"):
            kwargs.pop(name, None)  # always part of a tiled result
        if isinstance(image, (list, tuple)):
            return [tiled_mask_generation(self, item, **tiling, **kwargs) for item in image]
        return tiled_mask_generation(self, image, **tiling, **kwargs)

    def _sanitize_parameters(self, **kwargs):
        if "points_per_side" in kwargs:  # segment-anything's name (and `hf-promptseg generate --points-per-side`)
            if "points_per_crop" in kwargs:
                raise TypeError("give `points_per_crop` or its segment-anything name `points_per_side`, not both")
            kwargs["points_per_crop"] = kwargs.pop("points_per_side")
        tiling = {"tile_overlap", "merge_iou"} & set(kwargs)
        hint = f" ({', '.join(f'`{name}`' for name in sorted(tiling))} need `tile_size`)" if tiling else ""
        check_known_arguments(kwargs, TRANSFORMERS_ARGUMENTS + OUR_ARGUMENTS + ("tile_size",), "mask generation", hint)
        # Documented ranges, None = filter off: see `normalize_mask_generation_arguments`.
        kwargs = normalize_mask_generation_arguments(kwargs)
        fast_decoder = kwargs.pop("fast_decoder", None)
        cache_kwargs = {
            name: kwargs.pop(name)
            for name in ("embedding_cache", "image_embeddings", "encoder_backend")
            if name in kwargs
        }
        if "encoder_backend" in cache_kwargs:
            check_encoder_backend(cache_kwargs["encoder_backend"])
            if cache_kwargs["encoder_backend"] != "default" and is_sam2_mask_decoder(self.model.mask_decoder):
                raise ValueError(
                    f"`encoder_backend={cache_kwargs['encoder_backend']!r}` needs SAM's ViT; SAM2 takes 'default'"
                )
        output_stability_scores = kwargs.pop("output_stability_scores", None)
        preprocess_kwargs, forward_params, postprocess_kwargs = super()._sanitize_parameters(**kwargs)
        if "embedding_cache" in cache_kwargs:
            resolve_cache(cache_kwargs["embedding_cache"])  # type check now, not at the first image
        preprocess_kwargs.update(cache_kwargs)
        if output_stability_scores is not None:
            postprocess_kwargs["output_stability_scores"] = bool(output_stability_scores)
        if fast_decoder is not None:
            if not isinstance(fast_decoder, bool):
                raise TypeError(f"`fast_decoder` must be True or False, got {fast_decoder!r}")
            preprocess_kwargs["fast_decoder"] = fast_decoder
            forward_params["fast_decoder"] = fast_decoder
            postprocess_kwargs["fast_decoder"] = fast_decoder
        return preprocess_kwargs, forward_params, postprocess_kwargs

    def _fast_by_default(self) -> bool:
        processor = self.image_processor
        if isinstance(processor, HfPromptsegSam2ImageProcessor):
            return processor.saved_by_hf_promptseg
        return isinstance(processor, HfPromptsegSamImageProcessor)

    def preprocess(
        self,
        image,
        *args,
        fast_decoder: bool | None = None,
        embedding_cache: EmbeddingCache | bool | None = None,
        image_embeddings: Any = None,
        encoder_backend: str = "default",
        **kwargs,
    ):
        if not isinstance(image, str):
            validate_images(image, argument="image")
            image = to_pil_image(image, argument="image")
        if image_embeddings is not None:
            if kwargs.get("crops_n_layers", 0):
                raise ValueError("`image_embeddings` covers the whole image; it cannot be used with `crops_n_layers`")
            embedding = image_embeddings[0] if isinstance(image_embeddings, (tuple, list)) else image_embeddings
            if not torch.is_tensor(embedding) or embedding.ndim not in (3, 4):
                raise TypeError(
                    "`image_embeddings` must be the (1, C, h, w) tensor of `model.get_image_embeddings`, got "
                    f"{type(embedding).__name__} {tuple(getattr(embedding, 'shape', ()))}"
                )
            if embedding.ndim == 3:
                image_embeddings = embedding[None]
        fast = self._fast_by_default() if fast_decoder is None else fast_decoder
        # a named backend runs its own attention kernel; the default one runs row-chunked on the fast path
        with (
            row_chunked_vision_attention(self.model) if fast and encoder_backend == "default" else nullcontext(),
            caching_image_embeddings(self.model, resolve_cache(embedding_cache), image_embeddings, encoder_backend),
        ):
            for chunk in super().preprocess(image, *args, **kwargs):
                chunk["num_points"] = torch.tensor([chunk["input_points"].shape[1]])
                yield chunk

    def _forward(
        self,
        model_inputs: dict[str, Any],
        pred_iou_thresh: float = 0.88,
        stability_score_thresh: float = 0.95,
        mask_threshold: float = 0,
        stability_score_offset: int = 1,
        max_hole_area: float | None = None,
        max_sprinkle_area: float | None = None,
        fast_decoder: bool | None = None,
    ) -> dict[str, list]:
        if fast_decoder is None:
            fast_decoder = self._fast_by_default()
        if fast_decoder and (max_hole_area or max_sprinkle_area):
            raise ValueError("`max_hole_area` / `max_sprinkle_area` need `fast_decoder=False`")
        num_points = model_inputs.pop("num_points").tolist()
        batch = len(num_points)
        input_boxes = model_inputs.pop("input_boxes").reshape(batch, -1)
        is_last = model_inputs.pop("is_last")
        collated = isinstance(is_last, list)  # batch_size > 1: the DataLoader collated chunks into lists/tensors
        is_last = is_last if collated else [bool(is_last)]
        original_sizes = model_inputs.pop("original_sizes").reshape(batch, 2).tolist()
        reshaped = model_inputs.pop("reshaped_input_sizes", None)  # SAM only: SAM2 resizes without padding
        reshaped_input_sizes = original_sizes if reshaped is None else reshaped.reshape(batch, 2).tolist()
        full_image_sizes = model_inputs.pop("full_image_size").reshape(batch, 2).tolist()

        if "intermediate_embeddings" in model_inputs:
            model_inputs["intermediate_embeddings"] = _stack_intermediate(model_inputs["intermediate_embeddings"])
        if isinstance(model_inputs["image_embeddings"], (list, tuple)):  # SAM2: its feature maps, finest first
            model_inputs["image_embeddings"] = _stack_intermediate(model_inputs["image_embeddings"])
        filters = {
            "pred_iou_thresh": pred_iou_thresh,
            "stability_score_thresh": stability_score_thresh,
            "mask_threshold": mask_threshold,
            "stability_score_offset": stability_score_offset,
        }
        sizes = (original_sizes, reshaped_input_sizes, full_image_sizes)
        if fast_decoder:
            out = self._fast_decode(model_inputs, num_points, input_boxes, *sizes, filters)
        else:
            size_kwargs = {}
            if max_hole_area is not None:
                size_kwargs["max_hole_area"] = max_hole_area
            if max_sprinkle_area is not None and max_sprinkle_area > 0:
                size_kwargs["max_sprinkle_area"] = max_sprinkle_area
            out = self._stock_decode(model_inputs, num_points, input_boxes, *sizes, filters, size_kwargs)
        out["is_last"] = is_last
        return out if collated else {key: value[0] for key, value in out.items()}

    def _stock_decode(
        self, model_inputs, num_points, input_boxes, original_sizes, reshaped_input_sizes, full_image_sizes, filters,
        size_kwargs,
    ) -> dict[str, list]:  # fmt: skip
        """transformers' decoding and `filter_masks`, per point batch of a collated batch."""
        model_outputs = self.model(**model_inputs)
        low_resolution_masks = model_outputs["pred_masks"]
        iou_scores = model_outputs["iou_scores"]

        out: dict[str, list] = {"masks": [], "boxes": [], "iou_scores": []}
        for i, count in enumerate(num_points):
            masks = self.image_processor.post_process_masks(
                low_resolution_masks[i : i + 1, :count],
                [original_sizes[i]],
                mask_threshold=filters["mask_threshold"],
                reshaped_input_sizes=[reshaped_input_sizes[i]],
                binarize=False,
                **size_kwargs,
            )
            masks, scores, boxes = self.image_processor.filter_masks(
                masks[0], iou_scores[i, :count], full_image_sizes[i], input_boxes[i], **filters
            )
            out["masks"].append(masks)
            out["boxes"].append(boxes)
            out["iou_scores"].append(scores)
        return out

    def _fast_decode(
        self, model_inputs, num_points, input_boxes, original_sizes, reshaped_input_sizes, full_image_sizes, filters
    ) -> dict[str, list]:
        """Fast decoder + filters for each point batch; same candidates as the stock path, fewer upscaled."""
        model = self.model
        decoder = getattr(self, "_fast_mask_decoder", None)
        if decoder is None or decoder.decoder is not model.mask_decoder:
            kind = FastSam2MaskDecoder if is_sam2_mask_decoder(model.mask_decoder) else FastSamMaskDecoder
            decoder = self._fast_mask_decoder = kind(model.mask_decoder)
        positional = model.get_image_wide_positional_embeddings()
        embeddings = model_inputs["image_embeddings"]
        skips = None
        if isinstance(embeddings, (list, tuple)):
            *skips, embeddings = embeddings
        intermediate = model_inputs.get("intermediate_embeddings")
        out: dict[str, list] = {"masks": [], "boxes": [], "iou_scores": [], "stability_scores": []}
        for i, count in enumerate(num_points):
            points = model_inputs["input_points"][i : i + 1, :count]
            labels = model_inputs["input_labels"][i : i + 1, :count]
            sparse, dense = model.prompt_encoder(points, labels, None, None)
            candidates = generate_candidates(
                decoder,
                embeddings[i : i + 1],
                positional,
                sparse[0],
                dense[:1],
                [layer[i : i + 1] for layer in intermediate] if intermediate is not None else None,
                **filters,
                high_resolution_features=[skip[i : i + 1] for skip in skips] if skips is not None else None,
                post_process=lambda logits, i=i: self.image_processor.post_process_masks(
                    [logits[None]], [original_sizes[i]], [reshaped_input_sizes[i]], binarize=False
                )[0][0],
                crop_box=input_boxes[i].tolist(),
                full_image_size=full_image_sizes[i],
            )
            out["masks"].append(candidates.run_lengths)
            out["boxes"].append(candidates.boxes)
            out["iou_scores"].append(candidates.scores)
            out["stability_scores"].append(candidates.stability_scores)
        return out

    def postprocess(
        self,
        model_outputs,
        output_rle_mask=False,
        output_bboxes_mask=False,
        crops_nms_thresh=0.7,
        fast_decoder=None,
        output_stability_scores=False,
    ):
        if fast_decoder is None:
            fast_decoder = self._fast_by_default()
        if fast_decoder:
            return _fast_postprocess(
                model_outputs, output_rle_mask, output_bboxes_mask, crops_nms_thresh, output_stability_scores
            )
        if output_stability_scores:
            raise ValueError("`output_stability_scores=True` needs `fast_decoder=True`")
        for output in model_outputs:
            output["iou_scores"] = output["iou_scores"].reshape(-1)
            output["boxes"] = output["boxes"].reshape(-1, 4)
        return super().postprocess(
            model_outputs,
            output_rle_mask=output_rle_mask,
            output_bboxes_mask=output_bboxes_mask,
            crops_nms_thresh=crops_nms_thresh,
        )


def _fast_postprocess(
    model_outputs, output_rle_mask, output_bboxes_mask, crops_nms_thresh, output_stability_scores=False
) -> dict[str, Any]:
    """Gather the point batches' RLE candidates and post-process them like the stock path (NMS, decode the kept)."""
    run_lengths, scores, boxes, stabilities, extra = [], [], [], [], {}
    for output in model_outputs:
        run_lengths += output.pop("masks")
        scores.append(output.pop("iou_scores").reshape(-1))
        boxes.append(output.pop("boxes").reshape(-1, 4))
        stabilities.append(output.pop("stability_scores").reshape(-1))
        for key, value in output.items():
            extra.setdefault(key, []).append(value)
    scores, boxes = torch.cat(scores), torch.cat(boxes)
    optional = {}
    # `post_process_for_mask_generation`'s NMS, run once here so the kept indices also select the stability scores
    keep = nms(boxes.float(), scores.float(), crops_nms_thresh)
    if output_stability_scores:
        optional["stability_scores"] = torch.cat(stabilities)[keep]
    masks, scores, rles, boxes = kept_candidates(run_lengths, scores, boxes, keep)
    if output_rle_mask:
        optional["rle_mask"] = rles
    if output_bboxes_mask:
        optional["bounding_boxes"] = boxes
    return {"masks": masks, "scores": scores, **optional, **extra}


def register_mask_generation_pipeline() -> None:
    """Serve `pipeline("mask-generation")` with `HfPromptsegMaskGenerationPipeline` (replacing the stock class)."""
    register_task_pipeline("mask-generation", HfPromptsegMaskGenerationPipeline, AutoModelForMaskGeneration, "image")


__all__ = ["HfPromptsegMaskGenerationPipeline", "register_mask_generation_pipeline"]
