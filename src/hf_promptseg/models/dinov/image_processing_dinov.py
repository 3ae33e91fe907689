"""DINOv image processor: resize (shortest/longest edge), normalise, then **pad** to a multiple of 32.

DINOv pads (bottom/right, value 0 after normalisation) where Mask2Former's processor would resize to a multiple of
32. Prompt masks go through the same geometry: nearest-neighbour resize to the resized image, zero padding.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from transformers.image_processing_utils import BaseImageProcessor, BatchFeature
from transformers.image_transforms import center_to_corners_format

from hf_promptseg.utils.boxes import nms
from hf_promptseg.utils.masks import unpad_mask_logits
from hf_promptseg.utils.validation import check_threshold, image_to_uint8, where

# The reference normalises 0..255 values with these (ImageNet statistics × 255); kept in that unit for exact parity.
DINOV_MEAN = (123.675, 116.28, 103.53)
DINOV_STD = (58.395, 57.12, 57.375)


def _as_uint8_hwc(image: Any, argument: str, index: int | None = None) -> np.ndarray:
    """RGB uint8 (H, W, 3); float images must hold [0, 1] (as in the SAM family: `utils.validation.image_to_uint8`)."""
    name = where(argument, index)
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{name} must be a PIL image, numpy array or tensor, got {type(image).__name__}")
    if image.ndim == 3 and image.shape[0] == 3 and image.shape[-1] != 3:
        image = image.transpose(1, 2, 0)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"{name} must be an RGB image (H, W, 3) or (3, H, W), got shape {tuple(image.shape)}")
    if min(image.shape[:2]) == 0:
        raise ValueError(f"{name} has an empty spatial dimension: shape {tuple(image.shape)}")
    if image.dtype != np.uint8:
        if not np.issubdtype(image.dtype, np.floating):
            raise TypeError(f"{name} has dtype {image.dtype}; expected uint8 (0..255) or float (values in [0, 1])")
        image = image_to_uint8(image, argument, index)
    return image


class DinovImageProcessor(BaseImageProcessor):
    """Resize, normalise and pad images (and prompt masks) for DINOv.

    Args:
        do_resize: resize so the shortest edge is `size["shortest_edge"]` without the longest exceeding
            `size["longest_edge"]` (the reference's COCO evaluation: 800 / 1333).
        resample: PIL filter of the image resize (bilinear, as detectron2's `ResizeShortestEdge`).
        image_mean, image_std: per-channel statistics in 0..255 units.
        size_divisibility: pad height and width up to a multiple of this.

    Example:
        >>> import numpy as np
        >>> from hf_promptseg.models.dinov import DinovImageProcessor
        >>> processor = DinovImageProcessor(do_resize=False)
        >>> batch = processor(np.zeros((203, 275, 3), np.uint8), return_tensors="pt")
        >>> tuple(batch["pixel_values"].shape), batch["image_sizes"].tolist()
        ((1, 3, 224, 288), [[203, 275]])
    """

    model_input_names = ["pixel_values"]

    def __init__(
        self,
        do_resize: bool = True,
        size: dict[str, int] | None = None,
        resample: int = Image.BILINEAR,
        image_mean: tuple[float, ...] = DINOV_MEAN,
        image_std: tuple[float, ...] = DINOV_STD,
        size_divisibility: int = 32,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.do_resize = do_resize
        self.size = dict(size) if size is not None else {"shortest_edge": 800, "longest_edge": 1333}
        self.resample = int(resample)
        self.image_mean = list(image_mean)
        self.image_std = list(image_std)
        self.size_divisibility = size_divisibility

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """(height, width) after the shortest/longest-edge resize (detectron2's rounding: int(x + 0.5))."""
        if not self.do_resize:
            return height, width
        short, long = self.size["shortest_edge"], self.size.get("longest_edge")
        scale = short / min(height, width)
        new_h, new_w = height * scale, width * scale
        if long is not None and max(new_h, new_w) > long:
            scale = long / max(new_h, new_w)
            new_h, new_w = new_h * scale, new_w * scale
        return int(new_h + 0.5), int(new_w + 0.5)

    def _padded(self, sizes: list[tuple[int, int]]) -> tuple[int, int]:
        divisor = self.size_divisibility
        height = max(h for h, _ in sizes)
        width = max(w for _, w in sizes)
        return -(-height // divisor) * divisor, -(-width // divisor) * divisor

    def preprocess(self, images: Any, prompt_masks: Any = None, return_tensors: str | None = "pt", **kwargs: Any):
        """`pixel_values` (B, 3, Hp, Wp), `image_sizes` (B, 2) after resizing, `original_sizes` (B, 2); with
        `prompt_masks` (one (N, H, W) array per image, H×W the image's size) also `prompt_masks` (B, N, Hp, Wp)."""
        images = list(images) if isinstance(images, (list, tuple)) else [images]
        if not images:
            raise ValueError("`images` is empty")
        arrays = [
            _as_uint8_hwc(image, "images", index if len(images) > 1 else None) for index, image in enumerate(images)
        ]
        originals = [a.shape[:2] for a in arrays]
        sizes = [self.output_size(*shape) for shape in originals]
        resized = [
            a if tuple(a.shape[:2]) == size else np.asarray(Image.fromarray(a).resize(size[::-1], self.resample))
            for a, size in zip(arrays, sizes)
        ]
        padded_h, padded_w = self._padded(sizes)
        mean = torch.tensor(self.image_mean).view(3, 1, 1)
        std = torch.tensor(self.image_std).view(3, 1, 1)
        pixel_values = torch.zeros(len(resized), 3, padded_h, padded_w)
        for index, array in enumerate(resized):
            normalised = (torch.tensor(array).permute(2, 0, 1).float() - mean) / std
            pixel_values[index, :, : array.shape[0], : array.shape[1]] = normalised
        data = {
            "pixel_values": pixel_values,
            "image_sizes": torch.tensor(sizes),
            "original_sizes": torch.tensor(originals),
        }
        if prompt_masks is not None:
            data["prompt_masks"] = self.preprocess_prompt_masks(prompt_masks, originals, sizes, (padded_h, padded_w))
        return BatchFeature(data=data, tensor_type=return_tensors)

    def preprocess_prompt_masks(self, prompt_masks, originals, sizes, padded) -> torch.Tensor:
        masks = prompt_masks if isinstance(prompt_masks, (list, tuple)) else [prompt_masks]
        if len(masks) != len(originals):
            raise ValueError(
                f"`prompt_masks` must give one (N, H, W) stack per image: {len(masks)} for {len(originals)} images"
            )
        counts = {len(m) for m in masks}
        if len(counts) != 1:
            raise ValueError(
                f"every image needs the same number of prompts (pad with empty masks), got {sorted(counts)}"
            )
        out = torch.zeros(len(masks), counts.pop(), *padded)
        for index, (stack, original, size) in enumerate(zip(masks, originals, sizes)):
            stack = torch.as_tensor(np.asarray(stack)).float()
            if stack.ndim != 3 or tuple(stack.shape[-2:]) != tuple(original):
                raise ValueError(
                    f"`prompt_masks`[{index}] must have shape (N, {original[0]}, {original[1]}) to match its image, "
                    f"got {tuple(stack.shape)}"
                )
            if tuple(size) != tuple(original):
                stack = F.interpolate(stack[None], size=size, mode="nearest")[0]
            out[index, :, : size[0], : size[1]] = stack
        return out

    def post_process_referring(
        self,
        outputs: Any,
        image_size: tuple[int, int],
        target_size: tuple[int, int] | None = None,
        iou_threshold: float = 0.5,
        nms_threshold: float = 0.7,
        min_mask_area: int = 50,
    ) -> list[dict[str, torch.Tensor]]:
        """One mask per visual prompt from raw referring outputs (batch of one target image per entry).

        The reference's filter, in its order: proposals whose predicted IoU exceeds `iou_threshold`; NMS on their
        boxes scored by predicted IoU (`nms_threshold`, suppress above); masks with at most `min_mask_area` positive
        pixels at 1/4 resolution dropped; then per prompt the proposal with the highest softmax of the match score
        over the survivors. Masks are upsampled (bilinear) to the padded size, cropped to `image_size` (resized
        image, before padding) and, with `target_size`, resized bicubic with antialiasing.

        Returns per image: `masks` (N, H, W) logits (> 0 = object), `scores` (N,), `indices` (N,) chosen proposals,
        and `masks_before_resize` (N, h, w).
        """
        # The predicted IoU is an unbounded regression output: any finite floor is meaningful (-1 keeps ~all).
        check_threshold(iou_threshold, "iou_threshold", -math.inf, math.inf)
        check_threshold(nms_threshold, "nms_threshold", 0.0, 1.0)
        check_threshold(min_mask_area, "min_mask_area", 0.0, None)
        results = []
        for index in range(outputs.pred_masks.shape[0]):
            masks = outputs.pred_masks[index]
            ious = outputs.iou_scores[index].reshape(-1)
            candidates = (ious > iou_threshold).nonzero()[:, 0]
            if candidates.numel() == 0:
                raise ValueError(f"no proposal has a predicted IoU above `iou_threshold`={iou_threshold}; lower it")
            boxes = outputs.pred_boxes[index][candidates]
            candidates = candidates[nms(center_to_corners_format(boxes), ious[candidates], nms_threshold)]
            candidates = candidates[(masks[candidates] > 0).flatten(1).sum(-1) > min_mask_area]
            if candidates.numel() == 0:
                raise ValueError(f"every proposal is smaller than `min_mask_area`={min_mask_area} pixels; lower it")
            probabilities = outputs.match_scores[index][:, candidates].softmax(-1)
            scores, best = probabilities.max(-1)
            chosen = candidates[best]
            cropped = self._to_image(masks[chosen], image_size, None)
            final = unpad_mask_logits(cropped, image_size, target_size, mode="bicubic", antialias=True)
            results.append({"masks": final, "scores": scores, "indices": chosen, "masks_before_resize": cropped})
        return results

    @staticmethod
    def _to_image(
        masks: torch.Tensor, image_size: tuple[int, int], target_size: tuple[int, int] | None
    ) -> torch.Tensor:
        """(Q, h/4, w/4) logits → bilinear to the padded size → crop to `image_size` → bicubic (antialias) resize,
        as the reference's `sem_seg_postprocess`."""
        padded = (masks.shape[-2] * 4, masks.shape[-1] * 4)
        return unpad_mask_logits(masks, image_size, target_size, padded, mode="bicubic", antialias=True)

    def post_process_semantic(
        self, outputs: Any, image_sizes: list, target_sizes: list | None = None, temperature: float = 0.06
    ) -> list[torch.Tensor]:
        """(H, W) category maps: `softmax(sigmoid(logits) / temperature)` ⊗ `sigmoid(masks)`, argmax over categories."""
        results = []
        for index in range(outputs.logits.shape[0]):
            scores = (outputs.logits[index].sigmoid() / temperature).softmax(-1)
            target = target_sizes[index] if target_sizes is not None else None
            masks = self._to_image(outputs.pred_masks[index], tuple(image_sizes[index]), target).sigmoid()
            results.append(torch.einsum("qc,qhw->chw", scores, masks).argmax(0))
        return results

    def post_process_instance(
        self, outputs: Any, image_sizes: list, target_sizes: list | None = None, top_k: int = 300,
        threshold: float = 0.0, return_binary_maps: bool = False,
    ) -> list[dict[str, Any]]:  # fmt: skip
        """Instances in transformers' format: per image `segmentation` (H, W) segment ids (-1 = none; where masks
        overlap the higher score wins) and `segments_info` (`id`, `label_id`, `score`, `was_fused`); with
        `return_binary_maps=True`, `segmentation` is the (K, H, W) stack of masks instead.

        The reference's instance inference: the `top_k` (query, category) pairs by sigmoid class score, each scored
        class score × mean mask probability inside its mask; kept above `threshold`.
        """
        check_threshold(threshold, "threshold", 0.0, 1.0)
        results = []
        for index in range(outputs.logits.shape[0]):
            logits = outputs.logits[index].sigmoid()
            queries, categories = logits.shape
            scores, flat = logits.flatten().topk(min(top_k, queries * categories))
            labels, chosen = flat % categories, flat // categories
            target = target_sizes[index] if target_sizes is not None else None
            masks = self._to_image(outputs.pred_masks[index][chosen], tuple(image_sizes[index]), target)
            binary = masks > 0
            inside = (masks.sigmoid() * binary).flatten(1).sum(-1) / (binary.flatten(1).sum(-1) + 1e-6)
            scores = scores * inside
            keep = (scores > threshold).nonzero()[:, 0]
            keep = keep[scores[keep].argsort(descending=True)]
            segments = [
                {"id": i, "label_id": int(labels[k]), "score": float(scores[k]), "was_fused": False}
                for i, k in enumerate(keep.tolist())
            ]
            if return_binary_maps:
                segmentation = binary[keep]
            else:
                segmentation = torch.full(binary.shape[-2:], -1, dtype=torch.long)
                for i in reversed(range(len(keep))):
                    segmentation[binary[keep[i]]] = i
            results.append({"segmentation": segmentation, "segments_info": segments})
        return results

    def post_process_panoptic(
        self, outputs: Any, image_sizes: list, target_sizes: list | None = None, temperature: float = 0.06,
        object_mask_threshold: float = 0.25, overlap_threshold: float = 0.8, stuff_categories: set[int] | None = None,
    ) -> list[dict[str, Any]]:  # fmt: skip
        """Per image: `segmentation` (H, W) segment ids (-1 = none) and `segments_info` (`id`, `label_id`, `score`,
        `was_fused`), MaskDINO-style: queries above `object_mask_threshold`, masks weighted by score, argmax, a segment
        kept when at least `overlap_threshold` of its mask survives; `stuff_categories` are merged per category."""
        check_threshold(object_mask_threshold, "object_mask_threshold", 0.0, 1.0)
        check_threshold(overlap_threshold, "overlap_threshold", 0.0, 1.0)
        stuff_categories = stuff_categories or set()
        results = []
        for index in range(outputs.logits.shape[0]):
            probabilities = outputs.logits[index].sigmoid()
            scores, labels = (probabilities / temperature).softmax(-1).max(-1)
            keep = probabilities.max(-1).values > object_mask_threshold
            target = target_sizes[index] if target_sizes is not None else None
            masks = self._to_image(outputs.pred_masks[index][keep], tuple(image_sizes[index]), target).sigmoid()
            scores, labels = scores[keep], labels[keep]
            segmentation = torch.full(masks.shape[-2:], -1, dtype=torch.long)
            segments: list[dict[str, Any]] = []
            if len(scores):
                owner = (scores[:, None, None] * masks).argmax(0)
                merged: dict[int, int] = {}
                for query in range(len(scores)):
                    label = int(labels[query])
                    region = (owner == query) & (masks[query] >= 0.5)
                    area, original = int(region.sum()), int((masks[query] >= 0.5).sum())
                    if area == 0 or original == 0 or area / original < overlap_threshold:
                        continue
                    if label in stuff_categories and label in merged:
                        segmentation[region] = merged[label]
                        continue
                    segment_id = len(segments)
                    merged[label] = segment_id
                    segmentation[region] = segment_id
                    segments.append(
                        {"id": segment_id, "label_id": label, "score": float(scores[query]), "was_fused": False}
                    )
            results.append({"segmentation": segmentation, "segments_info": segments})
        return results


__all__ = ["DinovImageProcessor", "DINOV_MEAN", "DINOV_STD"]
