"""SAM image processor that needs no torchvision, with input validation.

transformers' SAM image processors call `torchvision.ops.batched_nms` in the last step of automatic mask
generation; PyPI's torchvision does not import beside the CPU build of torch, so the stock pipeline fails at its very
end. This subclass replaces that step with a torch-only NMS (`hf_promptseg.utils.boxes`) and checks images before
they reach the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from transformers.image_processing_utils import BatchFeature
from transformers.models.sam.image_processing_pil_sam import SamImageProcessorPil

from hf_promptseg.utils.boxes import nms
from hf_promptseg.utils.deprecation import moved_names
from hf_promptseg.utils.run_length import decode_run_lengths, run_lengths_as_lists
from hf_promptseg.utils.validation import image_to_uint8

try:
    from PIL import Image
except ImportError:  # pragma: no cover - pillow is a dependency
    Image = None

_ALLOWED_CHANNELS = (1, 3)


def _as_image_list(images: Any) -> list:
    if isinstance(images, (list, tuple)):
        flat = []
        for item in images:
            flat.extend(item if isinstance(item, (list, tuple)) else [item])
        return flat
    if isinstance(images, (np.ndarray, torch.Tensor)) and images.ndim == 4:
        return list(images)
    return [images]


def validate_images(images: Any, argument: str = "images") -> None:
    """Raise a clear `TypeError`/`ValueError` for images the SAM processor cannot take.

    Accepted: PIL images, and numpy arrays / torch tensors that are 2-D (grayscale) or 3-D with 1 or 3 channels
    (channels first or last), of dtype uint8 (0..255) or floating point with values in [0, 1] (converted to uint8,
    see `hf_promptseg.utils.validation.image_to_uint8`; float values outside [0, 1], NaN or inf are refused).
    """
    image_list = _as_image_list(images)
    if not image_list:
        raise ValueError(f"`{argument}` is empty; expected at least one image")
    for index, image in enumerate(image_list):
        where = f"`{argument}`[{index}]" if len(image_list) > 1 else f"`{argument}`"
        if Image is not None and isinstance(image, Image.Image):
            continue
        if isinstance(image, str):
            continue  # a path or URL; transformers' loader reports its own errors
        if not isinstance(image, (np.ndarray, torch.Tensor)):
            raise TypeError(f"{where} must be a PIL image, numpy array or torch tensor, got {type(image).__name__}")
        array = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else image
        if array.dtype == np.bool_ or not (array.dtype == np.uint8 or np.issubdtype(array.dtype, np.floating)):
            raise TypeError(f"{where} has dtype {array.dtype}; expected uint8 (0..255) or a float dtype (0..1)")
        if array.ndim == 2:
            continue
        if array.ndim != 3:
            raise ValueError(
                f"{where} has shape {tuple(array.shape)}; expected (H, W), (H, W, C) or (C, H, W) with C in 1 or 3"
            )
        if array.shape[-1] not in _ALLOWED_CHANNELS and array.shape[0] not in _ALLOWED_CHANNELS:
            raise ValueError(
                f"{where} has shape {tuple(array.shape)}: no channel axis of size 1 or 3 first or last; "
                "expected an RGB or grayscale image (convert RGBA to RGB first)"
            )
        if min(array.shape[:2]) == 0 or min(array.shape[-2:]) == 0:
            raise ValueError(f"{where} has an empty spatial dimension: shape {tuple(array.shape)}")
        image_to_uint8(array, argument, index if len(image_list) > 1 else None)


def _floats_to_uint8(images: Any) -> Any:
    """Float images in [0, 1] as uint8, so transformers' rescale (x / 255) is applied exactly once."""
    if isinstance(images, (list, tuple)):
        return [_floats_to_uint8(image) for image in images]
    if isinstance(images, (np.ndarray, torch.Tensor)) and images.ndim == 4:
        return [image_to_uint8(image, "images") for image in images]
    return image_to_uint8(images, "images")


def _grayscale_arrays_to_rgb(images: Any) -> Any:
    """(H, W) and single-channel arrays/tensors -> 3 channels (transformers accepts grayscale only as PIL)."""

    def convert(image: Any) -> Any:
        if not isinstance(image, (np.ndarray, torch.Tensor)):
            return image
        if image.ndim == 2:
            return image[..., None].repeat(3, -1) if isinstance(image, np.ndarray) else image[None].expand(3, -1, -1)
        if image.ndim == 3 and image.shape[-1] == 1:
            return image.repeat(3, -1) if isinstance(image, np.ndarray) else image.expand(-1, -1, 3)
        if image.ndim == 3 and image.shape[0] == 1:
            return image.repeat(3, 0) if isinstance(image, np.ndarray) else image.expand(3, -1, -1)
        return image

    if isinstance(images, (list, tuple)):
        return [convert(image) for image in images]
    return convert(images)


class HfPromptsegSamImageProcessor(SamImageProcessorPil):
    """transformers' SAM image processor (PIL backend), with torch-only NMS and clear input errors.

    Drop-in for `SamImageProcessorPil`: directories saved by hf_promptseg name this class in
    `preprocessor_config.json`, so `AutoImageProcessor` and `pipeline("mask-generation")` pick it up once
    `hf_promptseg` is imported (plain transformers falls back to its own SAM processor).

    Example:
        >>> import numpy as np
        >>> from hf_promptseg.models.sam import HfPromptsegSamImageProcessor
        >>> processor = HfPromptsegSamImageProcessor()
        >>> inputs = processor(np.zeros((64, 96, 3), dtype=np.uint8), return_tensors="pt")
        >>> tuple(inputs["pixel_values"].shape), inputs["reshaped_input_sizes"].tolist()
        ((1, 3, 1024, 1024), [[683, 1024]])
    """

    resize_modes = ("longest_edge", "square")

    def __init__(self, resize_mode: str = "longest_edge", **kwargs: Any) -> None:
        if resize_mode not in self.resize_modes:
            raise ValueError(f"`resize_mode` must be one of {self.resize_modes}, got {resize_mode!r}")
        super().__init__(**kwargs)
        self.resize_mode = resize_mode

    def preprocess(self, images: Any, segmentation_maps: Any = None, **kwargs: Any) -> BatchFeature:
        """`resize_mode="longest_edge"`: SAM's resize + pad. `"square"`: SAM-Adapter's reference preprocessing,
        a plain bilinear resize to the padded size (aspect ratio not kept), then rescale and normalise."""
        validate_images(images)
        images = _grayscale_arrays_to_rgb(_floats_to_uint8(images))
        if self.resize_mode == "longest_edge":
            return super().preprocess(images, segmentation_maps, **kwargs)
        if segmentation_maps is not None:
            raise ValueError("`segmentation_maps` are not supported with `resize_mode='square'`")
        return self._square_preprocess(images, kwargs.get("return_tensors"))

    def _square_preprocess(self, images: Any, return_tensors: Any) -> BatchFeature:
        height, width = self.pad_size["height"], self.pad_size["width"]
        mean = np.asarray(self.image_mean, dtype=np.float32)[:, None, None]
        std = np.asarray(self.image_std, dtype=np.float32)[:, None, None]
        pixel_values, original_sizes = [], []
        for image in _as_image_list(images):
            picture = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
            original_sizes.append([picture.height, picture.width])
            resized = np.asarray(picture.convert("RGB").resize((width, height), Image.BILINEAR))
            scaled = resized.transpose(2, 0, 1).astype(np.float32) / np.float32(1 / self.rescale_factor)
            pixel_values.append((scaled - mean) / std)
        data = {
            "pixel_values": np.stack(pixel_values).astype(np.float32),
            "original_sizes": np.asarray(original_sizes, dtype=np.int64),
            "reshaped_input_sizes": np.asarray([[height, width]] * len(pixel_values), dtype=np.int64),
        }
        return BatchFeature(data=data, tensor_type=return_tensors)

    def post_process_for_mask_generation(
        self,
        all_masks: Sequence[dict[str, Any]],
        all_scores: torch.Tensor,
        all_boxes: torch.Tensor,
        crops_nms_thresh: float,
    ) -> tuple[list[np.ndarray], torch.Tensor, list[dict[str, Any]], torch.Tensor]:
        """`post_process_for_mask_generation` (torch-only NMS) as a method, where the pipeline looks for it."""
        return post_process_for_mask_generation(all_masks, all_scores, all_boxes, crops_nms_thresh)


def post_process_for_mask_generation(
    all_masks: Sequence[dict[str, Any]],
    all_scores: torch.Tensor,
    all_boxes: torch.Tensor,
    crops_nms_thresh: float,
) -> tuple[list[np.ndarray], torch.Tensor, list[dict[str, Any]], torch.Tensor]:
    """NMS over the candidate masks' boxes (torch only); returns masks, scores, RLEs and boxes of the kept ones.

    Args:
        all_masks: candidate masks as uncompressed RLE dicts (`{"size": [h, w], "counts": [...]}`, counts as
            lists or arrays); the kept ones come back with list counts, as transformers returns them.
        all_scores: `(N,)` predicted IoU scores.
        all_boxes: `(N, 4)` XYXY boxes of the masks.
        crops_nms_thresh: box IoU above which the lower-scored mask is dropped.
    """
    keep = nms(all_boxes.float(), all_scores.float(), crops_nms_thresh)
    return kept_candidates(all_masks, all_scores, all_boxes, keep)


def kept_candidates(
    all_masks: Sequence[dict[str, Any]], all_scores: torch.Tensor, all_boxes: torch.Tensor, keep: torch.Tensor
) -> tuple[list[np.ndarray], torch.Tensor, list[dict[str, Any]], torch.Tensor]:
    """Masks (decoded), scores, RLEs (list counts) and boxes of the candidates at indices `keep` (an NMS result)."""
    kept_rles = run_lengths_as_lists([all_masks[i] for i in keep.tolist()])
    masks = [decode_run_lengths(rle) for rle in kept_rles]
    return masks, all_scores[keep], kept_rles, all_boxes[keep]


def register_sam_image_processor() -> None:
    """Make `AutoImageProcessor` resolve `image_processor_type: HfPromptsegSamImageProcessor`."""
    from transformers import AutoConfig, AutoImageProcessor

    from hf_promptseg.models.sam.configuration_sam import HfPromptsegSamConfig

    AutoConfig.register(HfPromptsegSamConfig.model_type, HfPromptsegSamConfig, exist_ok=True)
    AutoImageProcessor.register(
        HfPromptsegSamConfig, image_processor_classes={"pil": HfPromptsegSamImageProcessor}, exist_ok=True
    )


__all__ = [
    "HfPromptsegSamImageProcessor",
    "kept_candidates",
    "nms",
    "post_process_for_mask_generation",
    "validate_images",
]
__getattr__ = moved_names(__name__, {"box_iou": "hf_promptseg.utils.boxes"})
