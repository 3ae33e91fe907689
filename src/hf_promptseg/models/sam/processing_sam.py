"""SAM processor that checks prompts against the images they belong to and pads uneven prompt batches."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from transformers import SamProcessor

from hf_promptseg.models.sam.prompt_padding import is_ragged, pad_prompts
from hf_promptseg.utils.validation import as_array, check_finite, check_last_dim, check_rank, to_numpy, where

VALID_LABELS = (1, 0, -1)  # positive, negative, "not a point"; plus the pad value (default -10)


def _per_image(prompts: Any, argument: str) -> list | None:
    """The prompts of each image (a list), with tensors / arrays split along their first axis."""
    if prompts is None:
        return None
    prompts = to_numpy(prompts)
    if isinstance(prompts, np.ndarray):
        if prompts.ndim == 0:
            raise ValueError(f"`{argument}` is a scalar; expected one list of prompts per image")
        return list(prompts)
    if not isinstance(prompts, (list, tuple)):
        raise TypeError(
            f"`{argument}` must be a list (one entry per image), array or tensor, got {type(prompts).__name__}"
        )
    if not prompts:
        raise ValueError(f"`{argument}` is empty; expected one list of prompts per image")
    return list(prompts)


def validate_sam_prompts(
    input_points: Any = None,
    input_labels: Any = None,
    input_boxes: Any = None,
    point_pad_value: float | None = -10,
) -> None:
    """Structure, rank, finiteness and label values of SAM prompts, per image, before anything is computed.

    Points per image: `(P, 2)` or `(O, P, 2)` `[x, y]`; labels: the same shape without the last axis, values in
    {1, 0, -1} or `point_pad_value`; boxes per image: `(B, 4)` `[x1, y1, x2, y2]`.
    """
    pad = -10 if point_pad_value is None else point_pad_value
    points, labels, boxes = (
        _per_image(input_points, "input_points"),
        _per_image(input_labels, "input_labels"),
        _per_image(input_boxes, "input_boxes"),
    )
    if labels is not None and points is None:
        raise ValueError("`input_labels` was given without `input_points`")
    if points is not None and labels is not None and len(points) != len(labels):
        raise ValueError(
            f"`input_points` holds prompts for {len(points)} image(s) but `input_labels` for {len(labels)}"
        )
    for index, image_points in enumerate(points or []):
        array = as_array(image_points, "input_points", index)
        check_rank(array, "input_points", (2, 3), "(points, 2) or (objects, points, 2) `[x, y]`", index)
        check_last_dim(array, "input_points", 2, "(..., 2) `[x, y]` coordinates", index)
        check_finite(array, "input_points", index)
        if labels is None:
            continue
        label_array = as_array(labels[index], "input_labels", index)
        check_finite(label_array, "input_labels", index)
        if label_array.shape != array.shape[:-1]:
            raise ValueError(
                f"`input_points`[{index}] and `input_labels`[{index}] do not match: {array.shape[:-1]} points vs "
                f"{label_array.shape} labels"
            )
        invalid = ~np.isin(label_array, (*VALID_LABELS, pad))
        if invalid.any():
            raise ValueError(
                f"{where('input_labels', index)} holds label {label_array[invalid][0]:g}; expected 1 (positive), "
                f"0 (negative), -1 (ignored) or the pad value {pad:g}"
            )
    for index, image_boxes in enumerate(boxes or []):
        array = as_array(image_boxes, "input_boxes", index)
        check_rank(array, "input_boxes", (2,), "(boxes, 4) `[x1, y1, x2, y2]`", index)
        check_last_dim(array, "input_boxes", 4, "(..., 4) `[x1, y1, x2, y2]`", index)
        check_finite(array, "input_boxes", index)


def validate_mask_prompts(input_masks: Any, num_images: int, size: tuple[int, int]) -> np.ndarray:
    """Low-resolution mask prompts (SAM's `input_masks`) as a float32 `(images, 1, *size)` array.

    Accepted per image: `(H, W)` or `(1, H, W)` logits at `size` (4x the image embedding: 256x256 for 1024 input).
    """
    masks = _per_image(input_masks, "input_masks")
    if len(masks) != num_images:
        raise ValueError(f"`input_masks` holds {len(masks)} mask(s) for {num_images} image(s); expected one per image")
    out = []
    for index, mask in enumerate(masks):
        array = as_array(mask, "input_masks", index)
        if array.ndim == 3 and array.shape[0] == 1:
            array = array[0]
        if array.shape != tuple(size):
            raise ValueError(
                f"{where('input_masks', index)} has shape {tuple(np.shape(mask))}; expected {tuple(size)} or "
                f"(1, {size[0]}, {size[1]}) (low-resolution logits, e.g. a previous `pred_masks`)"
            )
        check_finite(array, "input_masks", index)
        out.append(array[None].astype(np.float32))
    return np.stack(out)


def _validate_image_prompts(
    image_index: int,
    original_size: tuple[int, int],
    points: np.ndarray | None,
    labels: np.ndarray | None,
    boxes: np.ndarray | None,
    point_pad_value: float,
) -> None:
    """Prompts lie inside their image (structure, rank and finiteness were checked by `validate_sam_prompts`)."""
    height, width = (int(v) for v in original_size)
    if points is not None:
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
    if boxes is not None:
        boxes = boxes[~np.all(boxes == point_pad_value, axis=-1)]
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

    Uneven batches are padded instead of failing in numpy: images may carry different numbers of objects (point
    prompts or boxes, including none) and objects different numbers of points. Padding follows transformers'
    convention: padded points are `[-10, -10]` with label -10, padded boxes `[-10, -10, -10, -10]` (values kept
    exactly in the returned tensors). `split_by_image` returns each image's masks and scores with the padding
    removed. Padding whole objects is exact (objects are decoded independently); padding points *within* an object
    adds transformers' zero "not a point" token, which changes that object's mask slightly.

    Example:
        >>> import numpy as np
        >>> from hf_promptseg.models.sam import HfPromptsegSamImageProcessor, HfPromptsegSamProcessor
        >>> processor = HfPromptsegSamProcessor(HfPromptsegSamImageProcessor())
        >>> image = np.zeros((100, 200, 3), dtype=np.uint8)
        >>> inputs = processor(image, input_points=[[[50, 40]]], input_labels=[[1]], return_tensors="pt")
        >>> tuple(inputs["input_points"].shape)
        (1, 1, 1, 2)
    """

    def __call__(
        self,
        images: Any = None,
        text: Any = None,
        segmentation_maps: Any = None,
        input_points: Any = None,
        input_labels: Any = None,
        input_boxes: Any = None,
        input_masks: Any = None,
        **kwargs: Any,
    ):
        """`SamProcessor.__call__`: uneven prompts padded, prompts checked first, `input_masks` (mask prompts) accepted."""
        pad = self.point_pad_value if kwargs.get("point_pad_value") is None else kwargs["point_pad_value"]
        padded = is_ragged(input_points) or is_ragged(input_labels) or is_ragged(input_boxes)
        box_pad_rows = None
        if padded:
            input_points, input_labels, input_boxes, box_pad_rows = pad_prompts(
                input_points, input_labels, input_boxes, pad
            )
        validate_sam_prompts(input_points, input_labels, input_boxes, pad)
        encoded = super().__call__(
            images, text, segmentation_maps=segmentation_maps, input_points=input_points, input_labels=input_labels,
            input_boxes=input_boxes, **kwargs,
        )  # fmt: skip
        if padded:
            # normalisation rescaled the pad coordinates; restore the exact pad value, as transformers' own padding does
            if "input_points" in encoded and "input_labels" in encoded:
                encoded["input_points"][encoded["input_labels"] == pad] = pad
            if "input_boxes" in encoded and box_pad_rows is not None:
                rows = encoded["input_boxes"]
                rows[torch.from_numpy(box_pad_rows) if torch.is_tensor(rows) else box_pad_rows] = pad
        if input_masks is not None:
            pad_size = self.image_processor.pad_size
            size = (pad_size["height"] // 4, pad_size["width"] // 4)
            masks = validate_mask_prompts(input_masks, len(encoded["original_sizes"]), size)
            encoded["input_masks"] = torch.from_numpy(masks) if kwargs.get("return_tensors") == "pt" else masks
        return encoded

    @staticmethod
    def prompt_counts(inputs: dict[str, Any], point_pad_value: float = -10) -> list[int]:
        """Number of real (unpadded) objects per image of a processor output; padding sits at the end."""
        real = None
        if inputs.get("input_labels") is not None:
            labels = torch.as_tensor(inputs["input_labels"])
            real = (labels != point_pad_value).flatten(2).any(-1)
        if inputs.get("input_boxes") is not None:
            boxes = torch.as_tensor(inputs["input_boxes"])
            real_boxes = ~(boxes == point_pad_value).all(-1)
            real = real_boxes if real is None else real | real_boxes
        if real is None:
            return [0] * len(inputs["original_sizes"])
        return [int(row.nonzero().max()) + 1 if row.any() else 0 for row in real]

    def split_by_image(
        self, pred_masks: torch.Tensor, iou_scores: torch.Tensor, inputs: dict[str, Any], **post_process_kwargs: Any
    ) -> list[dict[str, torch.Tensor]]:
        """Per image, `masks` (objects, masks per object, H, W) at its original size and `scores`, padding removed.

        Example:
            >>> outputs = model(**inputs)  # doctest: +SKIP
            >>> per_image = processor.split_by_image(outputs.pred_masks, outputs.iou_scores, inputs)  # doctest: +SKIP
        """
        masks = self.image_processor.post_process_masks(
            pred_masks.cpu(), inputs["original_sizes"].cpu(), inputs["reshaped_input_sizes"].cpu(),
            **post_process_kwargs,
        )  # fmt: skip
        return [
            {"masks": image_masks[:count], "scores": iou_scores[index, :count].cpu()}
            for index, (image_masks, count) in enumerate(zip(masks, self.prompt_counts(inputs)))
        ]

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
