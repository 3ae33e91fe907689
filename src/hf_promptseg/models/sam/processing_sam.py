"""SAM processor that checks prompts against the images they belong to and pads uneven prompt batches."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from transformers import SamProcessor

_LEVELS = ("object", "point", "coordinate")


def _nested_shape(value: Any, argument: str, image_index: int, level: int = 0) -> tuple[int, ...] | None:
    """Shape of a (possibly ragged) nested list whose leaves are numbers: the longest length at each level.

    None for an empty list (an image without prompts). Raises when leaves sit at different depths.
    """
    if isinstance(value, (int, float, np.number)):
        return ()
    if not isinstance(value, (list, tuple, np.ndarray)):
        raise TypeError(f"`{argument}`[{image_index}] holds a {type(value).__name__}; expected numbers in lists")
    shapes = [_nested_shape(item, argument, image_index, level + 1) for item in value]
    shapes = [shape for shape in shapes if shape is not None]
    if not shapes:
        return None if len(value) == 0 else (len(value),)
    depths = {len(shape) for shape in shapes}
    if len(depths) > 1:
        name = _LEVELS[level] if level < len(_LEVELS) else f"level {level}"
        raise ValueError(
            f"`{argument}`[{image_index}] is malformed at its {name} level (nesting depth {level + 1}): some "
            "entries are numbers and others lists, or lists of different depths"
        )
    return (len(value), *np.max(np.array(shapes), axis=0).tolist())


def _fill(target: np.ndarray, value: Any) -> None:
    """Copy a ragged nested list into the leading corner of each level of `target` (the rest keeps its pad)."""
    if target.ndim == 1:
        target[: len(value)] = value
        return
    for index, item in enumerate(value):
        _fill(target[index], item)


def _leaf_sizes(value: Any) -> set[int]:
    """Lengths of the innermost lists (those holding numbers) of a nested list."""
    if len(value) and not isinstance(value[0], (list, tuple, np.ndarray)):
        return {len(value)}
    return set().union(*(_leaf_sizes(item) for item in value)) if len(value) else set()


def _pad_per_image(prompts: list, argument: str, pad: float, leaf: int | None) -> list[np.ndarray] | None:
    """One array per image, all of one shape, padded with `pad`; `leaf` is the required size of the last level."""
    shapes = [_nested_shape(p, argument, i) for i, p in enumerate(prompts)]
    known = [shape for shape in shapes if shape is not None]
    if not known:
        return None
    if len({len(shape) for shape in known}) > 1:
        raise ValueError(
            f"`{argument}` nests images to different depths: {[len(s) if s else 0 for s in shapes]} levels per image"
        )
    full = tuple(np.max(np.array(known), axis=0).tolist())
    if leaf is not None:
        for index, prompt in enumerate(prompts):
            sizes = _leaf_sizes(prompt) - {leaf}
            if sizes:
                raise ValueError(f"`{argument}`[{index}] has {min(sizes)} coordinates in an entry; expected {leaf}")
    arrays = []
    for prompt in prompts:
        array = np.full(full, pad, dtype=np.float64)
        _fill(array, prompt)
        arrays.append(array)
    return arrays


def _is_ragged(prompts: Any) -> bool:
    if prompts is None or torch.is_tensor(prompts) or isinstance(prompts, np.ndarray):
        return False
    try:
        array = np.asarray(prompts, dtype=np.float64)
    except ValueError:
        return True
    return array.size == 0 or any(np.asarray(p).size == 0 for p in prompts)


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

    def __call__(self, images=None, text=None, segmentation_maps=None, input_points=None, input_labels=None,
                 input_boxes=None, **kwargs):  # fmt: skip
        pad = self.point_pad_value if kwargs.get("point_pad_value") is None else kwargs["point_pad_value"]
        padded = _is_ragged(input_points) or _is_ragged(input_labels) or _is_ragged(input_boxes)
        box_pad_rows = None
        if padded:
            input_points, input_labels, input_boxes, box_pad_rows = _pad_prompts(
                input_points, input_labels, input_boxes, pad
            )
        encoding = super().__call__(
            images, text, segmentation_maps=segmentation_maps, input_points=input_points, input_labels=input_labels,
            input_boxes=input_boxes, **kwargs,
        )  # fmt: skip
        if padded:
            # normalisation rescaled the pad coordinates; restore the exact pad value, as transformers' own padding does
            if "input_points" in encoding and "input_labels" in encoding:
                is_pad = encoding["input_labels"] == pad
                encoding["input_points"][is_pad] = pad
            if "input_boxes" in encoding and box_pad_rows is not None:
                rows = encoding["input_boxes"]
                rows[torch.from_numpy(box_pad_rows) if torch.is_tensor(rows) else box_pad_rows] = pad
        return encoding

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


def _pad_prompts(input_points, input_labels, input_boxes, pad: float):
    """Pad ragged prompt lists to one shape across images and objects (see `HfPromptsegSamProcessor`)."""
    for name, prompts in (
        ("input_points", input_points),
        ("input_labels", input_labels),
        ("input_boxes", input_boxes),
    ):
        if prompts is not None and not isinstance(prompts, (list, tuple)):
            raise TypeError(f"`{name}` must be a list with one entry per image, got {type(prompts).__name__}")
    if input_points is not None and input_labels is not None:
        if len(input_points) != len(input_labels):
            raise ValueError(f"`input_points` covers {len(input_points)} image(s), `input_labels` {len(input_labels)}")
        for index, (points, labels) in enumerate(zip(input_points, input_labels)):
            point_shape = _nested_shape(points, "input_points", index)
            label_shape = _nested_shape(labels, "input_labels", index)
            if (point_shape or (0,))[:-1] != (label_shape or (0,)) and not (
                point_shape is None and label_shape is None
            ):
                raise ValueError(
                    f"`input_points`[{index}] and `input_labels`[{index}] do not match: points nested as "
                    f"{point_shape} (..., 2) but labels as {label_shape}; give one label per point"
                )
    points = None if input_points is None else _pad_per_image(list(input_points), "input_points", pad, 2)
    labels = None if input_labels is None else _pad_per_image(list(input_labels), "input_labels", pad, None)
    if points is not None and labels is None:
        labels = [np.where(np.all(p == pad, axis=-1), pad, 1) for p in points]
    labels = None if labels is None else [label.astype(np.int64) for label in labels]
    boxes = None if input_boxes is None else _pad_per_image(list(input_boxes), "input_boxes", pad, 4)
    box_pad_rows = None if boxes is None else np.stack([np.all(b == pad, axis=-1) for b in boxes])
    to_list = lambda arrays: None if arrays is None else [a.tolist() for a in arrays]  # noqa: E731
    return to_list(points), to_list(labels), to_list(boxes), box_pad_rows


def register_sam_processor() -> None:
    """Make `AutoProcessor` resolve `processor_class: HfPromptsegSamProcessor`."""
    from transformers import AutoProcessor

    from hf_promptseg.models.sam.configuration_sam import HfPromptsegSamConfig

    AutoProcessor.register(HfPromptsegSamConfig, HfPromptsegSamProcessor, exist_ok=True)


__all__ = ["HfPromptsegSamProcessor"]
