"""SAM processor that checks prompts against the images they belong to."""

from __future__ import annotations

from typing import Any

import numpy as np
from transformers import SamProcessor


def _validate_image_prompts(
    image_index: int,
    original_size: tuple[int, int],
    points: np.ndarray | None,
    labels: np.ndarray | None,
    boxes: np.ndarray | None,
    point_pad_value: float,
) -> None:
    height, width = (int(v) for v in original_size)
    if points is not None:
        if points.dtype == object or points.shape[-1:] != (2,):
            raise ValueError(
                f"`input_points`[{image_index}] has shape {points.shape}; expected (..., 2) `[x, y]` coordinates "
                "with the same number of points for every object of an image"
            )
        if labels is not None and labels.shape != points.shape[:-1]:
            raise ValueError(
                f"`input_points`[{image_index}] and `input_labels`[{image_index}] do not match: "
                f"{points.shape[:-1]} points vs {labels.shape} labels"
            )
        real = np.ones(points.shape[:-1], dtype=bool) if labels is None else labels >= 0
        real &= ~np.all(points == point_pad_value, axis=-1)
        xs, ys = points[..., 0][real], points[..., 1][real]
        outside = (xs < 0) | (xs > width) | (ys < 0) | (ys > height)
        if outside.any():
            first = int(np.flatnonzero(outside)[0])
            raise ValueError(
                f"`input_points`[{image_index}] has {int(outside.sum())} point(s) outside the {width}x{height} "
                f"(width x height) image, e.g. [{xs[first]:g}, {ys[first]:g}]; coordinates are pixels of the original "
                "image, x in [0, width], y in [0, height]"
            )
    elif labels is not None:
        raise ValueError("`input_labels` was given without `input_points`")
    if boxes is not None:
        if boxes.shape[-1:] != (4,):
            raise ValueError(
                f"`input_boxes`[{image_index}] has shape {boxes.shape}; expected (..., 4) `[x1, y1, x2, y2]`"
            )
        x1, y1, x2, y2 = (boxes[..., i] for i in range(4))
        if np.any(x2 < x1) or np.any(y2 < y1):
            raise ValueError(
                f"`input_boxes`[{image_index}] has a box with x2 < x1 or y2 < y1; expected [x1, y1, x2, y2]"
            )
        if np.any(np.minimum(x1, y1) < 0) or np.any(x2 > width) or np.any(y2 > height):
            raise ValueError(
                f"`input_boxes`[{image_index}] has a box outside the {width}x{height} (width x height) image"
            )


class HfPromptsegSamProcessor(SamProcessor):
    """transformers' `SamProcessor` that rejects prompts which cannot belong to their image.

    Checks, per image: points are `[x, y]` inside the original image, as many labels as points, boxes are
    `[x1, y1, x2, y2]` inside the image; one prompt list per image (or several for a single image). Points labelled
    negative (padding) are exempt.

    Example:
        >>> import numpy as np
        >>> from hf_promptseg.models.sam import HfPromptsegSamImageProcessor, HfPromptsegSamProcessor
        >>> processor = HfPromptsegSamProcessor(HfPromptsegSamImageProcessor())
        >>> image = np.zeros((100, 200, 3), dtype=np.uint8)
        >>> inputs = processor(image, input_points=[[[50, 40]]], input_labels=[[1]], return_tensors="pt")
        >>> tuple(inputs["input_points"].shape)
        (1, 1, 1, 2)
    """

    def _check_and_preprocess_points(self, input_points=None, input_labels=None, input_boxes=None):
        try:
            return super()._check_and_preprocess_points(input_points, input_labels, input_boxes)
        except ValueError as err:
            if "inhomogeneous" not in str(err):
                raise
            raise ValueError(
                "prompts are ragged: within one image every object needs the same number of points "
                "(pad shorter ones with label -10) and every box 4 coordinates"
            ) from err

    def _normalize_and_convert(
        self,
        encoding_image_processor,
        original_sizes,
        input_points=None,
        input_labels=None,
        input_boxes=None,
        return_tensors="pt",
        point_pad_value=-10,
    ) -> Any:
        num_images = len(original_sizes)
        for name, prompts in (
            ("input_points", input_points),
            ("input_labels", input_labels),
            ("input_boxes", input_boxes),
        ):
            if prompts is not None and len(prompts) != num_images and num_images != 1:
                raise ValueError(
                    f"`{name}` holds prompts for {len(prompts)} image(s) but {num_images} image(s) were given"
                )
        pad = -10 if point_pad_value is None else point_pad_value
        num_prompt_sets = max(len(p) for p in (input_points, input_labels, input_boxes, [None]) if p is not None)
        for index in range(num_prompt_sets):
            _validate_image_prompts(
                index,
                tuple(original_sizes[index if num_images > 1 else 0]),
                None if input_points is None else np.asarray(input_points[index]),
                None if input_labels is None else np.asarray(input_labels[index]),
                None if input_boxes is None else np.asarray(input_boxes[index]),
                pad,
            )
        return super()._normalize_and_convert(
            encoding_image_processor,
            original_sizes,
            input_points=input_points,
            input_labels=input_labels,
            input_boxes=input_boxes,
            return_tensors=return_tensors,
            point_pad_value=point_pad_value,
        )


def register_sam_processor() -> None:
    """Make `AutoProcessor` resolve `processor_class: HfPromptsegSamProcessor`."""
    from transformers import AutoProcessor

    from hf_promptseg.models.sam.configuration_sam import HfPromptsegSamConfig

    AutoProcessor.register(HfPromptsegSamConfig, HfPromptsegSamProcessor, exist_ok=True)


__all__ = ["HfPromptsegSamProcessor"]
