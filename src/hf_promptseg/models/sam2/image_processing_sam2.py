"""SAM2 image processor with the outputs of transformers' `Sam2ImageProcessor`, without torchvision.

transformers' `Sam2ImageProcessor` (formerly `Sam2ImageProcessorFast`) cannot be imported here: its module imports
`torchvision.ops.batched_nms` at the top, and PyPI's torchvision does not import beside the CPU build of torch. So
`pipeline("mask-generation")` fails on SAM2 checkpoints before any model code runs. This class keeps transformers'
torchvision backend (`TorchvisionBackend`: kwargs handling, batching, fused rescale/normalise) and replaces only
what needed torchvision: the image operations (`tensor_ops`, the same torch calls) and the final NMS
(`hf_promptseg.utils.boxes.nms`). SAM2's own methods are written out here because their module cannot be loaded;
the mask-generation helpers SAM2 shares with SAM come from transformers' SAM module, which imports without
torchvision. `tests/models/sam2/test_image_processing_sam2.py` checks the outputs against stored outputs of
transformers' class.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from transformers.image_processing_backends import TorchvisionBackend
from transformers.image_processing_utils import BatchFeature, get_size_dict
from transformers.image_transforms import get_resize_output_image_size, get_size_with_aspect_ratio
from transformers.image_utils import (
    IMAGENET_DEFAULT_MEAN,
    IMAGENET_DEFAULT_STD,
    IMAGENET_STANDARD_MEAN,
    IMAGENET_STANDARD_STD,
    ChannelDimension,
    PILImageResampling,
    SizeDict,
    get_image_size_for_max_height_width,
    infer_channel_dimension_format,
    is_valid_image,
    load_image,
)
from transformers.models.sam.image_processing_pil_sam import (
    _batched_mask_to_box,
    _compute_stability_score,
    _generate_per_layer_crops,
    _is_box_near_crop_edge,
    _pad_masks,
)
from transformers.processing_utils import ImagesKwargs

from hf_promptseg.models.sam2 import tensor_ops
from hf_promptseg.utils.boxes import nms
from hf_promptseg.utils.run_length import decode_run_lengths, encode_run_lengths, run_lengths_as_lists

_MODES = {
    PILImageResampling.NEAREST: "nearest-exact",  # transformers maps PIL's NEAREST to torchvision's NEAREST_EXACT
    PILImageResampling.BILINEAR: "bilinear",
    PILImageResampling.BICUBIC: "bicubic",
}


class HfPromptsegSam2ImageProcessorKwargs(ImagesKwargs, total=False):
    """mask_size (`dict[str, int]`): `{"height", "width"}` that segmentation maps are resized to."""

    mask_size: dict[str, int]


def validate_sam2_images(images: Any, argument: str = "images") -> None:
    """Raise a clear `TypeError`/`ValueError` for images SAM2 processing cannot take.

    Accepted: paths/URLs, PIL images, and numpy arrays / torch tensors that are (H, W) or have 1, 3 or 4 channels
    first or last, of an integer or floating dtype (floats are rescaled by 1/255 like transformers does).
    """
    flat = []
    for item in images if isinstance(images, (list, tuple)) else [images]:
        if isinstance(item, (list, tuple)):
            flat.extend(item)
        elif isinstance(item, (np.ndarray, torch.Tensor)) and item.ndim == 4:
            flat.extend(list(item))
        else:
            flat.append(item)
    if not flat:
        raise ValueError(f"`{argument}` is empty; expected at least one image")
    for index, image in enumerate(flat):
        where = f"`{argument}`[{index}]" if len(flat) > 1 else f"`{argument}`"
        if isinstance(image, str) or (is_valid_image(image) and not isinstance(image, (np.ndarray, torch.Tensor))):
            continue
        if not isinstance(image, (np.ndarray, torch.Tensor)):
            raise TypeError(f"{where} must be a PIL image, numpy array or torch tensor, got {type(image).__name__}")
        dtype = image.dtype
        if dtype in (np.bool_, torch.bool) or (isinstance(image, np.ndarray) and not np.issubdtype(dtype, np.number)):
            raise TypeError(f"{where} has dtype {dtype}; expected uint8 (0..255) or a float dtype")
        if image.ndim not in (2, 3):
            raise ValueError(f"{where} has shape {tuple(image.shape)}; expected (H, W), (H, W, C) or (C, H, W)")
        if image.ndim == 3 and image.shape[0] not in (1, 3, 4) and image.shape[-1] not in (1, 3, 4):
            raise ValueError(
                f"{where} has shape {tuple(image.shape)}: no channel axis of size 1, 3 or 4 first or last"
            )
        if 0 in tuple(image.shape):
            raise ValueError(f"{where} has an empty dimension: shape {tuple(image.shape)}")


def _point_grid(points_per_side: int) -> torch.Tensor:
    """(n², 2) points evenly spaced in [0, 1]², in float32 as SAM2 builds them (SAM's own grid is float64)."""
    offset = 1 / (2 * points_per_side)
    side = torch.linspace(offset, 1 - offset, points_per_side)
    xs = torch.tile(side[None, :], (points_per_side, 1))
    ys = torch.tile(side[:, None], (1, points_per_side))
    return torch.stack([xs, ys], dim=-1).reshape(-1, 2)


def _scale_points(target_size: int, points: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    """Points of an (h, w) crop in the frame of a `target_size` longest-edge resize of it (SAM2 keeps SAM's rule)."""
    height, width = image_size
    scale = target_size * 1.0 / max(height, width)
    new_height, new_width = int(height * scale + 0.5), int(width * scale + 0.5)
    points = points.clone().float()
    points[..., 0] = points[..., 0] * (new_width / width)
    points[..., 1] = points[..., 1] * (new_height / height)
    return points


class HfPromptsegSam2ImageProcessor(TorchvisionBackend):
    """transformers' SAM2 image processor, computed with torch alone.

    Same attributes, `__call__`, `post_process_masks`, `generate_crop_boxes`, `filter_masks` and
    `post_process_for_mask_generation` as `transformers.Sam2ImageProcessor`; directories saved with it name this class
    in `preprocessor_config.json`, so `AutoImageProcessor` and `pipeline("mask-generation")` pick it up once
    `hf_promptseg` is imported.

    Example:
        >>> import numpy as np
        >>> from hf_promptseg.models.sam2 import HfPromptsegSam2ImageProcessor
        >>> processor = HfPromptsegSam2ImageProcessor(size={"height": 256, "width": 256})
        >>> inputs = processor(np.zeros((60, 90, 3), dtype=np.uint8), return_tensors="pt")
        >>> tuple(inputs["pixel_values"].shape), inputs["original_sizes"].tolist()
        ((1, 3, 256, 256), [[60, 90]])
    """

    valid_kwargs = HfPromptsegSam2ImageProcessorKwargs
    saved_by_hf_promptseg = True  # the mask-generation pipeline's fast decoder is the default for these
    resample = PILImageResampling.BILINEAR
    image_mean = IMAGENET_DEFAULT_MEAN
    image_std = IMAGENET_DEFAULT_STD
    size = {"height": 1024, "width": 1024}
    mask_size = {"height": 256, "width": 256}
    do_resize = True
    do_rescale = True
    do_normalize = True
    do_convert_rgb = True
    do_pad = None
    pad_size = None
    mask_pad_size = None

    @property
    def backend(self) -> str:
        return "torch"

    def fetch_images(self, image_url_or_urls: Any) -> Any:
        """Paths and URLs are opened with PIL (transformers' tensor loader needs torchvision or torchcodec)."""
        if isinstance(image_url_or_urls, (list, tuple)):
            return [self.fetch_images(item) for item in image_url_or_urls]
        if isinstance(image_url_or_urls, str):
            return load_image(image_url_or_urls)
        return super().fetch_images(image_url_or_urls)

    def preprocess(self, images: Any, segmentation_maps: Any = None, **kwargs: Any) -> BatchFeature:
        """Resize to `size` (aspect ratio not kept), rescale and normalise; `segmentation_maps` become `labels`."""
        validate_sam2_images(images)
        if segmentation_maps is not None:
            validate_sam2_images(segmentation_maps, argument="segmentation_maps")
        return super().preprocess(images, segmentation_maps, **kwargs)

    def _standardize_kwargs(self, mask_size: SizeDict | dict | None = None, **kwargs: Any) -> dict:
        if mask_size is not None and not isinstance(mask_size, SizeDict):
            mask_size = SizeDict(**get_size_dict(mask_size, param_name="mask_size"))
        kwargs["mask_size"] = mask_size
        return super()._standardize_kwargs(**kwargs)

    def _preprocess_image_like_inputs(
        self,
        images: Any,
        segmentation_maps: Any,
        do_convert_rgb: bool,
        input_data_format: ChannelDimension | None,
        device: str | torch.device | None = None,
        **kwargs: Any,
    ) -> BatchFeature:
        images = self._prepare_image_like_inputs(
            images=images, do_convert_rgb=do_convert_rgb, input_data_format=input_data_format, device=device
        )
        data = {"original_sizes": [image.shape[-2:] for image in images]}
        data = {"pixel_values": self._preprocess(images, **kwargs), **data}
        if segmentation_maps is not None:
            maps = self._prepare_image_like_inputs(
                images=segmentation_maps,
                expected_ndims=2,
                do_convert_rgb=False,
                input_data_format=ChannelDimension.FIRST,
            )
            map_kwargs = {**kwargs, "do_normalize": False, "do_rescale": False, "resample": PILImageResampling.NEAREST}
            map_kwargs["size"] = map_kwargs.pop("mask_size")
            data["labels"] = self._preprocess(maps, **map_kwargs).squeeze(1).to(torch.int64)
        return BatchFeature(data=data, tensor_type=kwargs["return_tensors"])

    def _preprocess(self, images: list[torch.Tensor], return_tensors: Any, **kwargs: Any) -> torch.Tensor:
        return super()._preprocess(images, return_tensors=return_tensors, **kwargs).pixel_values

    def convert_to_rgb(self, image: torch.Tensor, input_data_format: ChannelDimension | str | None = None):
        """Grayscale -> RGB by repeating the channel; RGBA -> RGB over white (what torchvision's backend does)."""
        if image.ndim == 2:
            image = image[None]
        image = tensor_ops.grayscale_to_rgb(image)
        if image.shape[0] == 4:
            if input_data_format is None:
                input_data_format = infer_channel_dimension_format(image, num_channels=(4,))
            channel_axis = -1 if input_data_format == ChannelDimension.LAST else -3
            image = tensor_ops.blend_alpha_on_white(image, channel_axis)
        return image

    def resize(
        self, image: torch.Tensor, size: SizeDict, resample: Any = None, antialias: bool = True, **kwargs: Any
    ) -> torch.Tensor:
        """Resize with `F.interpolate` under torchvision's dtype rules (NEAREST, BILINEAR or BICUBIC)."""
        resample = PILImageResampling.BILINEAR if resample is None else PILImageResampling(resample)
        if resample not in _MODES:
            raise ValueError(f"`resample` must be one of {[m.name for m in _MODES]} here, got {resample.name}")
        if size.shortest_edge and size.longest_edge:
            new_size = get_size_with_aspect_ratio(image.size()[-2:], size.shortest_edge, size.longest_edge)
        elif size.shortest_edge:
            new_size = get_resize_output_image_size(
                image, size=size.shortest_edge, default_to_square=False, input_data_format=ChannelDimension.FIRST
            )
        elif size.max_height and size.max_width:
            new_size = get_image_size_for_max_height_width(image.size()[-2:], size.max_height, size.max_width)
        elif size.height and size.width:
            new_size = (size.height, size.width)
        else:
            raise ValueError(f"`size` must have 'height' and 'width', or 'shortest_edge'/'longest_edge'; got {size}")
        return tensor_ops.resize_image(image, new_size, _MODES[resample], antialias=antialias)

    def normalize(self, image: torch.Tensor, mean: Any, std: Any, inplace: bool = False, **kwargs: Any):
        return tensor_ops.normalize_image(image, mean, std, inplace=inplace)

    def pad(self, *args: Any, **kwargs: Any):
        raise ValueError("SAM2 processing does not pad (`do_pad` must stay unset)")

    def center_crop(self, *args: Any, **kwargs: Any):
        raise ValueError("SAM2 processing does not center-crop (`do_center_crop` must stay unset)")

    def generate_crop_boxes(
        self,
        image: Any,
        target_size: int,
        crop_n_layers: int = 0,
        overlap_ratio: float = 512 / 1500,
        points_per_crop: int | None = 32,
        crop_n_points_downscale_factor: int | None = 1,
        device: torch.device | str | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor], torch.Tensor]:
        """Crop boxes (XYXY), point grids in the resized frame, cropped images (C, h, w) and labels, as SAM2's.

        Layer `i` has `(2**i)**2` overlapping crops with `points_per_crop / crop_n_points_downscale_factor**i` points
        per side. Returns `(crops, 4)` boxes, `(1, points, crops, 2)` points, the crops and `(1, points, crops)` labels.
        """
        for name, value, least in (("target_size", target_size, 1), ("crop_n_layers", crop_n_layers, 0),
                                   ("points_per_crop", points_per_crop, 1),
                                   ("crop_n_points_downscale_factor", crop_n_points_downscale_factor, 1)):  # fmt: skip
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
                raise ValueError(f"`{name}` must be an integer >= {least}, got {value!r}")
        if not 0 <= overlap_ratio < 1:
            raise ValueError(f"`overlap_ratio` must be in [0, 1), got {overlap_ratio!r}")
        if isinstance(image, list):
            raise ValueError("`image` must be one image: crop boxes are generated for one image at a time")
        validate_sam2_images(image, argument="image")
        image = self.process_image(image)
        sides = [int(points_per_crop / (crop_n_points_downscale_factor**layer)) for layer in range(crop_n_layers + 1)]
        if len(set(sides)) > 1:
            raise ValueError(
                f"crop layers would have {sides} points per side; SAM2's crop generation stacks every crop's points "
                "into one tensor, so they must be equal: use `crop_n_points_downscale_factor=1` with crop layers"
            )
        grids = [_point_grid(side) for side in sides]
        boxes, layers = _generate_per_layer_crops(crop_n_layers, overlap_ratio, image.shape[-2:])
        crops, points = [], []
        for (left, top, right, bottom), layer in zip(boxes, layers):
            crop = image[:, top:bottom, left:right]
            crops.append(crop)
            scale = torch.tensor(crop.shape[-2:]).flip(dims=(0,)).unsqueeze(0)
            points.append(_scale_points(target_size, grids[layer] * scale, crop.shape[-2:]))
        device = torch.device("cpu") if device is None else device
        points = torch.stack(points).unsqueeze(0).permute(0, 2, 1, 3)
        labels = torch.ones_like(points[:, :, :, 0], dtype=torch.int64)
        return torch.tensor(boxes).float().to(device), points.to(device), crops, labels.to(device)

    def filter_masks(
        self,
        masks: torch.Tensor,
        iou_scores: torch.Tensor,
        original_size: tuple[int, int],
        cropped_box_image: Any,
        pred_iou_thresh: float = 0.88,
        stability_score_thresh: float = 0.95,
        mask_threshold: float = 0,
        stability_score_offset: float = 1,
    ) -> tuple[list[dict], torch.Tensor, torch.Tensor]:
        """Keep masks with predicted IoU and stability above the thresholds, not cut by the crop's edge.

        Args:
            masks: `(P, K, h, w)` mask logits in the crop's frame; `iou_scores` `(P, K)`.
            original_size: `(height, width)` of the full image; `cropped_box_image` the crop's XYXY box in it.

        Returns the kept masks as uncompressed RLEs in the full image's frame, their scores and XYXY boxes.
        """
        if not isinstance(masks, torch.Tensor) or not isinstance(iou_scores, torch.Tensor):
            raise TypeError("`masks` and `iou_scores` must be torch tensors")
        if masks.ndim < 3 or iou_scores.ndim < 2:
            raise ValueError(
                f"`masks` must be (P, K, h, w) and `iou_scores` (P, K); got {tuple(masks.shape)} and "
                f"{tuple(iou_scores.shape)}"
            )
        height, width = (int(v) for v in original_size)
        iou_scores, masks = iou_scores.flatten(0, 1), masks.flatten(0, 1)
        if masks.shape[0] != iou_scores.shape[0]:
            raise ValueError(f"`masks` holds {masks.shape[0]} masks but `iou_scores` {iou_scores.shape[0]} scores")
        iou_scores = iou_scores.to(masks.device)
        keep = torch.ones(masks.shape[0], dtype=torch.bool, device=masks.device)
        if pred_iou_thresh > 0.0:
            keep &= iou_scores > pred_iou_thresh
        if stability_score_thresh > 0.0:
            keep &= _compute_stability_score(masks, mask_threshold, stability_score_offset) > stability_score_thresh
        scores, masks = iou_scores[keep], masks[keep] > mask_threshold
        boxes = _batched_mask_to_box(masks)
        inside = ~_is_box_near_crop_edge(boxes, cropped_box_image, [0, 0, width, height])
        scores, masks, boxes = scores[inside], masks[inside], boxes[inside]
        left, top = int(cropped_box_image[0]), int(cropped_box_image[1])
        boxes += torch.tensor([left, top, left, top], device=boxes.device)
        masks = _pad_masks(masks, cropped_box_image, height, width)
        return run_lengths_as_lists(encode_run_lengths(masks.cpu())), scores, boxes

    def post_process_masks(
        self,
        masks: Any,
        original_sizes: Any,
        mask_threshold: float = 0.0,
        binarize: bool = True,
        max_hole_area: float = 0.0,
        max_sprinkle_area: float = 0.0,
        apply_non_overlapping_constraints: bool = False,
        **kwargs: Any,
    ) -> list[torch.Tensor]:
        """Bilinear upscaling of `(P, K, h, w)` low-resolution logits to each image's `(height, width)`.

        Like transformers' SAM2 processor, `max_hole_area` / `max_sprinkle_area` are accepted and not applied, and
        other keyword arguments (e.g. SAM's `reshaped_input_sizes`) are ignored: SAM2 resizes without padding.
        """
        if isinstance(original_sizes, (torch.Tensor, np.ndarray)):
            original_sizes = original_sizes.tolist()
        if len(masks) < len(original_sizes):
            raise ValueError(f"`masks` holds {len(masks)} image(s) but `original_sizes` {len(original_sizes)}")
        outputs = []
        for index, size in enumerate(original_sizes):
            image_masks = masks[index]
            if isinstance(image_masks, np.ndarray):
                image_masks = torch.from_numpy(image_masks)
            elif not isinstance(image_masks, torch.Tensor):
                raise TypeError("`masks` must be a list of torch tensors or numpy arrays (one per image)")
            if image_masks.ndim != 4:
                raise ValueError(f"`masks`[{index}] must be (P, K, h, w), got shape {tuple(image_masks.shape)}")
            upscaled = F.interpolate(image_masks, [int(v) for v in size], mode="bilinear", align_corners=False)
            if apply_non_overlapping_constraints:
                upscaled = self._apply_non_overlapping_constraints(upscaled)
            outputs.append(upscaled > mask_threshold if binarize else upscaled)
        return outputs

    def post_process_for_mask_generation(
        self, all_masks: list[dict], all_scores: torch.Tensor, all_boxes: torch.Tensor, crops_nms_thresh: float
    ) -> tuple[list[torch.Tensor], torch.Tensor, list[dict], torch.Tensor]:
        """NMS over the candidates' boxes; returns masks (bool tensors), scores, RLEs and boxes of the kept ones."""
        if len(all_masks) != len(all_scores) or len(all_masks) != len(all_boxes):
            raise ValueError(
                f"`all_masks`, `all_scores` and `all_boxes` differ in length: {len(all_masks)}, {len(all_scores)}, "
                f"{len(all_boxes)}"
            )
        keep = nms(all_boxes.float(), all_scores, crops_nms_thresh)
        kept = [all_masks[i] for i in keep.tolist()]
        masks = [torch.from_numpy(decode_run_lengths(rle)) for rle in kept]
        return masks, all_scores[keep], kept, all_boxes[keep]

    @staticmethod
    def _apply_non_overlapping_constraints(pred_masks: torch.Tensor) -> torch.Tensor:
        """Keep, at each pixel, only the highest-scoring object; others are clamped to at most -10."""
        if pred_masks.size(0) == 1:
            return pred_masks
        winner = torch.argmax(pred_masks, dim=0, keepdim=True)
        keep = winner == torch.arange(pred_masks.size(0), device=pred_masks.device)[:, None, None, None]
        return torch.where(keep, pred_masks, torch.clamp(pred_masks, max=-10.0))


class StockSam2ImageProcessor(HfPromptsegSam2ImageProcessor):
    """What `AutoImageProcessor` gives a stock SAM2 / EdgeTAM checkpoint when torchvision cannot be imported.

    The same computations as `transformers.Sam2ImageProcessor` (that class is still chosen wherever torchvision
    imports); saving it writes `Sam2ImageProcessor` back, so a re-saved stock checkpoint stays a stock checkpoint, and
    the mask-generation pipeline keeps transformers' decoding for it unless asked for `fast_decoder=True`.
    """

    saved_by_hf_promptseg = False
    stock_name = "Sam2ImageProcessor"

    def to_dict(self) -> dict[str, Any]:
        output = super().to_dict()
        output["image_processor_type"] = self.stock_name
        return output


class StockSam3TrackerImageProcessor(StockSam2ImageProcessor):
    """`transformers.Sam3ImageProcessor` for SAM3-tracker checkpoints without torchvision (SAM2's steps, SAM3's defaults).

    Only the tracker's part: SAM3's detection post-processing (semantic, instance, object detection) needs
    transformers' own class.
    """

    image_mean = IMAGENET_STANDARD_MEAN
    image_std = IMAGENET_STANDARD_STD
    size = {"height": 1008, "width": 1008}
    mask_size = {"height": 288, "width": 288}
    stock_name = "Sam3ImageProcessor"

    def _detection_needs_torchvision(self, *args: Any, **kwargs: Any):
        raise NotImplementedError(
            "SAM3 detection post-processing is not part of hf_promptseg's torchvision-free SAM3-tracker processor; "
            "install torchvision to use transformers' Sam3ImageProcessor"
        )

    post_process_semantic_segmentation = _detection_needs_torchvision
    post_process_object_detection = _detection_needs_torchvision
    post_process_instance_segmentation = _detection_needs_torchvision


__all__ = [
    "HfPromptsegSam2ImageProcessor",
    "StockSam2ImageProcessor",
    "StockSam3TrackerImageProcessor",
    "validate_sam2_images",
]
