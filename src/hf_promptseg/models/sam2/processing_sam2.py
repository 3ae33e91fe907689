"""SAM2 processor (image processor + prompt normalisation) that checks prompts against their images.

transformers' `Sam2Processor` imports without torchvision; it only needs an image processor that does, which
`HfPromptsegSam2ImageProcessor` is. The subclass adds the checks the stock class leaves to silent misbehaviour:
prompts for more (or fewer) images than were given (the extra ones are left unnormalised), points or boxes outside
their image, and labels the prompt encoder has no embedding for.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import Sam2Processor

_LABELS = (-10, -1, 0, 1, 2, 3)  # padding, not-a-point, negative, positive, box corners (SAM2's 4 point embeddings)


def _flatten(nested: Any) -> list:
    if isinstance(nested, (list, tuple)):
        return [value for item in nested for value in _flatten(item)]
    return [nested]


class HfPromptsegSam2Processor(Sam2Processor):
    """transformers' `Sam2Processor` that rejects prompts which cannot belong to their image.

    Takes `input_points` `[image][object][point][x, y]`, `input_labels` `[image][object][point]` and `input_boxes`
    `[image][box][x1, y1, x2, y2]` in pixels of the original image (lists, numpy arrays or tensors), and
    `segmentation_maps`, exactly as the stock class; outputs are the stock ones.

    Example:
        >>> import numpy as np
        >>> from hf_promptseg.models.sam2 import HfPromptsegSam2ImageProcessor, HfPromptsegSam2Processor
        >>> processor = HfPromptsegSam2Processor(HfPromptsegSam2ImageProcessor(size={"height": 256, "width": 256}))
        >>> image = np.zeros((100, 200, 3), dtype=np.uint8)
        >>> inputs = processor(image, input_points=[[[[50, 40]]]], input_labels=[[[1]]], return_tensors="pt")
        >>> inputs["input_points"].tolist()
        [[[[64.0, 102.4000015258789]]]]
    """

    def _validate_single_input(self, data, expected_depth, input_name, expected_format, expected_coord_size=None):
        if data is not None and not isinstance(data, (list, torch.Tensor)) and not hasattr(data, "__array__"):
            raise TypeError(
                f"`input_{input_name}` must be a nested list, numpy array or torch tensor of format {expected_format},"
                f" got {type(data).__name__}"
            )
        nested = super()._validate_single_input(data, expected_depth, input_name, expected_format, expected_coord_size)
        if input_name == "labels" and nested is not None:
            unknown = sorted({value for value in _flatten(nested) if value not in _LABELS})
            if unknown:
                raise ValueError(
                    f"`input_labels` has label(s) {unknown}; expected 1 (positive), 0 (negative), -1 (not a point), "
                    "2/3 (box corners) or -10 (padding)"
                )
        return nested

    def _normalize_tensor_coordinates(self, tensor, original_sizes, is_bounding_box=False, preserve_padding=False):
        name = "input_boxes" if is_bounding_box else "input_points"
        if tensor.shape[0] != len(original_sizes):
            raise ValueError(
                f"`{name}` holds prompts for {tensor.shape[0]} image(s) but {len(original_sizes)} image(s) (or "
                "original sizes) were given; give one prompt list per image"
            )
        for index, size in enumerate(original_sizes):
            height, width = (float(v) for v in size)
            if is_bounding_box:
                x1, y1, x2, y2 = tensor[index].unbind(-1)
                if bool((x2 < x1).any() or (y2 < y1).any()):
                    raise ValueError(
                        f"`input_boxes`[{index}] has a box with x2 < x1 or y2 < y1; expected [x1, y1, x2, y2]"
                    )
                if bool((torch.minimum(x1, y1) < 0).any() or (x2 > width).any() or (y2 > height).any()):
                    raise ValueError(
                        f"`input_boxes`[{index}] has a box outside the {width:g}x{height:g} (width x height) image"
                    )
                continue
            points = tensor[index]
            real = ~(points == self.point_pad_value).all(-1)
            xs, ys = points[..., 0][real], points[..., 1][real]
            outside = (xs < 0) | (xs > width) | (ys < 0) | (ys > height)
            if bool(outside.any()):
                first = int(outside.nonzero()[0, 0])
                raise ValueError(
                    f"`input_points`[{index}] has {int(outside.sum())} point(s) outside the {width:g}x{height:g} "
                    f"(width x height) image, e.g. [{xs[first]:g}, {ys[first]:g}]; coordinates are pixels of the "
                    "original image"
                )
        return super()._normalize_tensor_coordinates(tensor, original_sizes, is_bounding_box, preserve_padding)


def build_sam2_processor(config: Any) -> HfPromptsegSam2Processor:
    """The processor a SAM2-generation model saved by hf_promptseg carries, sized from its config.

    Images are resized to the prompt encoder's `image_size`, masks to 4× its embedding grid, with the normalisation
    of transformers' processor for that model type (SAM3-tracker: mean = std = 0.5; SAM2, EdgeTAM: ImageNet's).

    Example:
        >>> from transformers import Sam2Config
        >>> from hf_promptseg.models.sam2.processing_sam2 import build_sam2_processor
        >>> build_sam2_processor(Sam2Config()).image_processor.mask_size
        {'height': 256, 'width': 256}
    """
    from hf_promptseg.models.sam2.image_processing_sam2 import (
        HfPromptsegSam2ImageProcessor,
        StockSam3TrackerImageProcessor,
    )

    prompt = getattr(config, "prompt_encoder_config", None)
    if prompt is None or not hasattr(prompt, "image_size"):
        raise TypeError(f"`config` must be a SAM2 / SAM3-tracker / EdgeTAM config, got {type(config).__name__}")
    size, grid = int(prompt.image_size), int(prompt.image_size) // int(prompt.patch_size)
    normalisation = {}
    if getattr(config, "model_type", None) == "sam3_tracker":
        normalisation = {
            "image_mean": StockSam3TrackerImageProcessor.image_mean,
            "image_std": StockSam3TrackerImageProcessor.image_std,
        }
    image_processor = HfPromptsegSam2ImageProcessor(
        size={"height": size, "width": size}, mask_size={"height": 4 * grid, "width": 4 * grid}, **normalisation
    )
    return HfPromptsegSam2Processor(image_processor)


def prompt_free_sam2_image_processor(config: Any, saved: Any = None):
    """The preprocessing prompt-free SAM2 models train, evaluate and serve with: a plain resize to the input size.

    `saved` (the image processor beside a model) is used when it is a SAM2 processor of this input size, else the
    one `build_sam2_processor` makes for the config (which is what hf_promptseg's trainer saves).
    """
    from hf_promptseg.models.sam2.image_processing_sam2 import HfPromptsegSam2ImageProcessor

    size = int(config.prompt_encoder_config.image_size)
    if isinstance(saved, HfPromptsegSam2ImageProcessor) and dict(saved.size) == {"height": size, "width": size}:
        return saved
    return build_sam2_processor(config).image_processor


__all__ = ["HfPromptsegSam2Processor", "build_sam2_processor", "prompt_free_sam2_image_processor"]
